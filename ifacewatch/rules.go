package ifacewatch

import "github.com/nsint/nsint/ifacewatch/selection"

// selector applies the selection rules (Config.Rules) to what the watcher
// finds.
type selector struct{ set selection.Set }

func newSelector(rules []selection.Rule) (selector, error) {
	set, err := selection.NewSet(rules)
	return selector{set: set}, err
}

func (s selector) selected(ns Namespace, iface *Interface) bool {
	return s.set.Selected(selection.Subject{Name: iface.Name, Kind: iface.Kind, NetnsName: ns.Name, Host: ns.Host})
}
