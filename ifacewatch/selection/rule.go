package selection

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Rule selects interfaces. The syntax, one rule per string (the agent's
// repeatable flag), is
//
//	include|exclude KEY=VALUE[,KEY=VALUE...]
//
// with keys
//
//	name   the interface name
//	kind   the interface kind (veth, macvlan, vf, physical, loopback, …)
//	netns  the namespace: the reserved word "host" is the host namespace; any
//	       other value is matched against the name of a namespace file (so
//	       "netns=*" is every namespace found in the watched directories, never
//	       the host)
//
// Conditions in one rule must all hold. A value is matched exactly unless it
// contains a glob character (*, ?, [ ]) — path.Match syntax — so "net1" never
// matches "net10" while "net*" does. A key may appear once per rule.
//
// An interface is selected when it matches at least one include rule (or there
// are no include rules) and no exclude rule; the order of rules does not
// matter (see Set). Examples:
//
//	include name=net*,kind=macvlan,netns=cni-*
//	exclude netns=host
//	exclude kind=loopback
type Rule struct {
	Exclude bool
	Name    string // empty: any
	Kind    string // empty: any
	Netns   string // empty: any; "host": the host namespace
	text    string
}

// ErrBadRule is wrapped by every Parse and Validate error.
var ErrBadRule = errors.New("bad selection rule")

// HostNetns is the netns value naming the host namespace.
const HostNetns = "host"

// Parse parses one rule; see Rule for the syntax. The error names the rule.
func Parse(s string) (Rule, error) {
	text := strings.TrimSpace(s)
	bad := func(format string, a ...any) (Rule, error) {
		return Rule{}, fmt.Errorf("%w %q: %s", ErrBadRule, s, fmt.Sprintf(format, a...))
	}
	verb, conds, _ := strings.Cut(text, " ")
	r := Rule{text: text}
	switch verb {
	case "include":
	case "exclude":
		r.Exclude = true
	default:
		return bad("must start with include or exclude")
	}
	conds = strings.TrimSpace(conds)
	if conds == "" {
		return bad("needs at least one KEY=VALUE condition")
	}
	for _, c := range strings.Split(conds, ",") {
		c = strings.TrimSpace(c)
		key, val, ok := strings.Cut(c, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || val == "" {
			return bad("condition %q is not KEY=VALUE", c)
		}
		if _, err := path.Match(val, ""); err != nil {
			return bad("value %q: %v", val, err)
		}
		var dst *string
		switch key {
		case "name":
			dst = &r.Name
		case "kind":
			dst = &r.Kind
		case "netns":
			dst = &r.Netns
		default:
			return bad("unknown key %q (want name, kind or netns)", key)
		}
		if *dst != "" {
			return bad("key %q given twice", key)
		}
		*dst = val
	}
	return r, nil
}

// Validate checks a rule built by hand rather than by Parse: it needs a
// condition, and every value must be a valid pattern.
func (r Rule) Validate() error {
	if r.Name == "" && r.Kind == "" && r.Netns == "" {
		return fmt.Errorf("%w %q: no condition", ErrBadRule, r.String())
	}
	for _, v := range []string{r.Name, r.Kind, r.Netns} {
		if _, err := path.Match(v, ""); err != nil {
			return fmt.Errorf("%w %q: value %q: %v", ErrBadRule, r.String(), v, err)
		}
	}
	return nil
}

// String returns the rule as it was written.
func (r Rule) String() string {
	if r.text != "" {
		return r.text
	}
	var conds []string
	for _, kv := range [][2]string{{"name", r.Name}, {"kind", r.Kind}, {"netns", r.Netns}} {
		if kv[1] != "" {
			conds = append(conds, kv[0]+"="+kv[1])
		}
	}
	verb := "include"
	if r.Exclude {
		verb = "exclude"
	}
	return verb + " " + strings.Join(conds, ",")
}

// Subject is what a rule is matched against: one interface and its
// namespace.
type Subject struct {
	Name      string // interface name
	Kind      string // interface kind
	NetnsName string // name of the namespace's file; "" for the host
	Host      bool   // the namespace is the host's
}

// Matches reports whether the rule's conditions all hold for s; Exclude
// plays no part.
func (r Rule) Matches(s Subject) bool {
	if r.Name != "" && !match(r.Name, s.Name) {
		return false
	}
	if r.Kind != "" && !match(r.Kind, s.Kind) {
		return false
	}
	if r.Netns != "" {
		if r.Netns == HostNetns {
			return s.Host
		}
		if s.Host || !match(r.Netns, s.NetnsName) {
			return false
		}
	}
	return true
}

// match is exact for plain values and path.Match for globs. Patterns were
// checked by Parse or Validate; an invalid one matches nothing.
func match(pattern, s string) bool {
	if !strings.ContainsAny(pattern, `*?[\`) {
		return pattern == s
	}
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// Set applies a list of rules: a subject is selected when it matches no
// exclude rule and at least one include rule, or there is none. The zero
// Set selects everything.
type Set struct {
	include, exclude []Rule
}

// NewSet validates rules and returns their Set.
func NewSet(rules []Rule) (Set, error) {
	var s Set
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			return Set{}, err
		}
		if r.Exclude {
			s.exclude = append(s.exclude, r)
		} else {
			s.include = append(s.include, r)
		}
	}
	return s, nil
}

// Selected reports whether the rules select sub.
func (s Set) Selected(sub Subject) bool {
	for _, r := range s.exclude {
		if r.Matches(sub) {
			return false
		}
	}
	if len(s.include) == 0 {
		return true
	}
	for _, r := range s.include {
		if r.Matches(sub) {
			return true
		}
	}
	return false
}
