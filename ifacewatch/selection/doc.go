// Package selection is the language of interface selection rules
// ("include name=net*,kind=macvlan", "exclude netns=host"): parsing, checking
// and matching against an interface's name, kind and namespace.
//
// It is a leaf: standard library only, so that configuration can validate
// the agent's --select rules without pulling in discovery (fsnotify,
// netlink). ifacewatch applies the rules to the interfaces it finds. The
// package opens nothing, keeps no state and never logs.
package selection
