// Package netnstest creates and removes real network namespaces, veth pairs and
// macvlan interfaces for the privileged tests of every nsint package.
//
// Every namespace is bound to a file the way `ip netns add` does it (a bind
// mount of the namespace onto a file in a directory the test chooses), so the
// code under test discovers it exactly as it would in production. Every name a
// test creates carries a unique prefix from Prefix, and everything is removed
// through tb.Cleanup, also when the test fails.
//
// Namespaces are created and entered through internal/netns (a locked OS
// thread that the Go runtime discards if it cannot switch back), the same code
// the agent uses.
package netnstest
