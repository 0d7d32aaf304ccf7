// Package watchlist reads the agent's watchlist file: YAML rules of protocol,
// IPv4/IPv6 source and destination prefixes and port ranges that say which
// flows to report. An empty list reports every flow.
//
// Load validates a whole file, naming the rule and field at fault; Watch
// reloads it on change and keeps the previous rules when a new version is bad.
// The kernel evaluates the rules (pkg/datapath); this package only parses.
package watchlist
