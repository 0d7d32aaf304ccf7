// Package flagconf layers configuration for nsint's binaries: every flag of a
// flag.FlagSet may also come from an environment variable (PREFIX + the flag
// name upper-cased with '-' turned into '_') and from a key of a YAML file
// (the flag's own name). Precedence: command line, then environment, then the
// file, then the flag's default.
//
// Repeatable flags (those whose value implements Resetter) take their whole
// list from the highest-precedence source that sets them instead of
// accumulating across sources.
package flagconf
