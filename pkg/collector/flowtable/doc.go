// Package flowtable aggregates INT observations into a bounded table of flows,
// one row per flow per observation point (interface and direction), plus
// per-interface totals.
//
// The table never grows beyond its capacity: when full, the least recently
// seen flow is evicted and counted. Entries are recycled, so a table at steady
// state does not allocate per observation. Per-interface totals live as long
// as their port: ForgetPorts drops those of ports that disappeared.
//
// TakeDeltas hands over what each row gained since it was last taken (for
// the OTLP export): the table keeps, per row, its counters as last taken and
// counts the rows changed since, so a take stops once it has found them all.
// A changed row that is evicted keeps its increments for the next take, up
// to the number TrackDeltas sets; beyond, they are counted lost. All methods
// are safe for concurrent use; it never logs.
package flowtable
