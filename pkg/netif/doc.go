// Package netif names an interface in a network namespace, the one identity
// every part of nsint uses from discovery to the API: a namespace is its nsfs
// inode (Netns), an interface is its namespace and its ifindex there (ID), and
// a TC hook is a Direction.
//
// It owns these types and nothing else: no I/O, no dependencies beyond the
// standard library, so that every package can import it.
//
// It must not carry attributes (names, MAC, addresses: they change under the
// same identity) or any encoding: the numeric values of Direction are neither
// the INT wire codes (pkg/intreport maps them) nor the datapath's C enum
// (pkg/datapath maps them).
//
// Lifetime pitfall: the kernel reuses nsfs inodes and ifindexes once their
// namespace or interface is gone, so an ID is unique among live interfaces
// only. A namespace removed and another created may share a Netns; discovery's
// events (a removal, then an addition) are what tell them apart.
package netif
