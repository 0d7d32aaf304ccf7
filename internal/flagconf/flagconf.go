package flagconf

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Resetter is implemented by repeatable flag values: Reset empties the list so
// that a higher-precedence source replaces, rather than extends, a lower one.
type Resetter interface {
	Reset()
}

// Error is a configuration error naming the field (flag name) and its value.
type Error struct {
	Field  string
	Value  string
	Source string // "flag", "env NSINT_X", "file PATH"
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid %s %q (from %s): %v", e.Field, e.Value, e.Source, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// EnvName is the environment variable that sets flag name under prefix.
func EnvName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse parses args into fs, then fills every flag not given on the command
// line from the environment (envPrefix) and, when the flag named configFlag is
// set by any source, from that YAML file. environ is os.Environ-shaped.
func Parse(fs *flag.FlagSet, args []string, envPrefix, configFlag string, environ []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	onCLI := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCLI[f.Name] = true })

	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix) {
			env[k] = v
		}
	}
	fromEnv := map[string]bool{}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if onCLI[f.Name] {
			return
		}
		name := EnvName(envPrefix, f.Name)
		v, ok := env[name]
		if !ok {
			return
		}
		fromEnv[f.Name] = true
		if err := setAll(f, splitList(f, v)); err != nil {
			errs = append(errs, &Error{Field: f.Name, Value: v, Source: "env " + name, Err: err})
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}

	if configFlag == "" {
		return nil
	}
	cf := fs.Lookup(configFlag)
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	return applyFile(fs, cf.Value.String(), func(name string) bool { return onCLI[name] || fromEnv[name] })
}

func applyFile(fs *flag.FlagSet, path string, setElsewhere func(string) bool) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("parse config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil {
			errs = append(errs, fmt.Errorf("config file %s: unknown key %q", path, k))
			continue
		}
		if setElsewhere(k) {
			continue
		}
		vals, err := yamlValues(doc[k])
		if err == nil {
			err = setAll(f, vals)
		}
		if err != nil {
			errs = append(errs, &Error{Field: k, Value: fmt.Sprint(doc[k]), Source: "file " + path, Err: err})
		}
	}
	return errors.Join(errs...)
}

// yamlValues turns a YAML scalar or list into flag strings.
func yamlValues(v any) ([]string, error) {
	switch t := v.(type) {
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, err := scalar(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	default:
		s, err := scalar(t)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
}

func scalar(v any) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case bool:
		return fmt.Sprint(t), nil
	case float64:
		// sigs.k8s.io/yaml decodes numbers as float64; print integers exactly.
		if t == float64(int64(t)) {
			return fmt.Sprintf("%d", int64(t)), nil
		}
		return fmt.Sprint(t), nil
	case nil:
		return "", nil
	default:
		return "", fmt.Errorf("want a scalar or a list of scalars, got %T", v)
	}
}

// splitList splits a comma-separated environment value for repeatable flags.
func splitList(f *flag.Flag, v string) []string {
	if _, ok := f.Value.(Resetter); !ok {
		return []string{v}
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func setAll(f *flag.Flag, vals []string) error {
	if r, ok := f.Value.(Resetter); ok {
		r.Reset()
	}
	for _, v := range vals {
		if err := f.Value.Set(v); err != nil {
			return err
		}
	}
	return nil
}

// StringList is a repeatable string flag. Its default list (set with
// NewStringList) is replaced, not extended, by the first value a source gives.
type StringList struct {
	Values  []string
	touched bool
}

// NewStringList returns a list flag value holding defaults.
func NewStringList(defaults ...string) *StringList {
	return &StringList{Values: defaults}
}

// String implements flag.Value.
func (s *StringList) String() string { return strings.Join(s.Values, ",") }

// Set implements flag.Value: each use appends one value.
func (s *StringList) Set(v string) error {
	if !s.touched {
		s.Values, s.touched = nil, true
	}
	s.Values = append(s.Values, v)
	return nil
}

// Reset implements Resetter.
func (s *StringList) Reset() { s.Values, s.touched = nil, true }

// FlagErrorValue finds, in an error returned by Parse, the first *Error.
func FlagErrorValue(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
