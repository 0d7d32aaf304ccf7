// Package flowtable aggregates INT observations into a bounded table of flows,
// one row per flow per observation point (interface and direction), plus
// per-interface totals.
//
// The table never grows beyond its capacity: when full, the least recently
// seen flow is evicted and counted. Entries are recycled, so a table at steady
// state does not allocate per observation. Per-interface totals live as long
// as their port: ForgetPorts drops those of ports that disappeared. All
// methods are safe for concurrent use; it never logs.
package flowtable
