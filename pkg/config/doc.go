// Package config defines nsint-agent's configuration: every flag, its
// NSINT_<FLAG> environment variable and its key in the YAML file given by
// --config (layered by internal/flagconf), with defaults and validation.
//
// Validation errors name the field and the value; the agent exits with status
// 2 on them. The package only parses and checks; it opens nothing.
package config
