package datapath

import (
	"cmp"
	"fmt"
	"time"
)

// Defaults applied to zero fields of Config.
const (
	DefaultReportInterval     = time.Second
	DefaultDropReportInterval = 25 * time.Millisecond
	DefaultSnapLen            = 128
	DefaultMaxFlows           = 65536
	DefaultMaxPorts           = 4096
	DefaultReportBufferBytes  = 256 << 10
	DefaultReportPoll         = 10 * time.Millisecond
	DefaultWakeupReports      = 64

	// MaxSnapLen bounds SnapLen: every report's record in the ring has
	// room for SnapLen packet bytes, whatever the packet's length.
	MaxSnapLen = 1024
)

// transitMaxAge is how recent an ingress sighting must be for an egress
// packet to be paired with it as transit traffic.
const transitMaxAge = time.Second

// Config sets the load-time constants and sizes of the datapath. Zero
// fields take the defaults above.
type Config struct {
	// ReportInterval is how often an active flow is reported again.
	ReportInterval time.Duration
	// DropReportInterval is the per-flow rate limit of drop reports.
	DropReportInterval time.Duration
	// SnapLen is how many bytes of each reported frame are captured.
	SnapLen uint16
	// MaxFlows sizes the flow and transit tables (LRU).
	MaxFlows uint32
	// MaxPorts bounds port IDs: valid IDs are 1 .. MaxPorts-1.
	MaxPorts uint32
	// ReportBufferBytes is the report ring's room per possible CPU: the
	// one ring all CPUs write to holds this times their number, rounded up
	// to a power of two (ringBytes).
	ReportBufferBytes int
	// WakeupReports is how many unread reports in the ring wake the
	// reader (report_submit): a wakeup costs the writing CPU more than a
	// new flow's whole report, so it is paid once per so many.
	WakeupReports int
	// ReportPoll is how often the reader looks at the ring without a
	// wakeup: the longest a report waits there while fewer than
	// WakeupReports are unread.
	ReportPoll time.Duration

	// IndirectTailCall makes dispatchers enter the main program by an
	// indirect tail call: about half the load cost and no text patching (no
	// IPI to every CPU) per dispatcher, for some ns more per packet where
	// the CPU needs a retpoline (see dispatcherSpec). The default is the
	// direct one.
	IndirectTailCall bool
	// perCPUFlows selects the per-CPU LRU hash for the flow state even
	// where the kernel could run the shared one; kept for the benchmarks
	// and tests that compare the two designs (see flowTable).
	perCPUFlows bool
	// userSpaceScan makes Sweep read the flow table from user space even
	// where the kernel could scan it: for the benchmarks and tests that
	// compare the two.
	userSpaceScan bool
	// preciseClock makes the report decisions use bpf_ktime_get_ns even
	// where the coarse clock exists (tick resolution): for tests that need
	// refreshes due more often than once a tick.
	preciseClock bool
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		ReportInterval:     DefaultReportInterval,
		DropReportInterval: DefaultDropReportInterval,
		SnapLen:            DefaultSnapLen,
		MaxFlows:           DefaultMaxFlows,
		MaxPorts:           DefaultMaxPorts,
		ReportBufferBytes:  DefaultReportBufferBytes,
		WakeupReports:      DefaultWakeupReports,
		ReportPoll:         DefaultReportPoll,
	}
}

func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	c.ReportInterval = cmp.Or(c.ReportInterval, d.ReportInterval)
	c.DropReportInterval = cmp.Or(c.DropReportInterval, d.DropReportInterval)
	c.SnapLen = cmp.Or(c.SnapLen, d.SnapLen)
	c.MaxFlows = cmp.Or(c.MaxFlows, d.MaxFlows)
	c.MaxPorts = cmp.Or(c.MaxPorts, d.MaxPorts)
	c.ReportBufferBytes = cmp.Or(c.ReportBufferBytes, d.ReportBufferBytes)
	c.WakeupReports = cmp.Or(c.WakeupReports, d.WakeupReports)
	c.ReportPoll = cmp.Or(c.ReportPoll, d.ReportPoll)
	switch {
	case c.ReportInterval < 0 || c.DropReportInterval < 0:
		return c, fmt.Errorf("config: negative interval")
	case c.SnapLen > MaxSnapLen:
		return c, fmt.Errorf("config: snap length %d above %d", c.SnapLen, MaxSnapLen)
	case c.MaxPorts < 2 || c.MaxPorts > 0xffff: // 0xffff is the C "local" marker
		return c, fmt.Errorf("config: max ports %d outside 2..65535", c.MaxPorts)
	case c.WakeupReports < 0 || c.ReportPoll < 0:
		return c, fmt.Errorf("config: negative wakeup count %d or poll interval %v", c.WakeupReports, c.ReportPoll)
	case c.ReportBufferBytes < 0 || c.ReportBufferBytes > maxReportBufferBytes:
		return c, fmt.Errorf("config: report buffer size %d outside 0..%d", c.ReportBufferBytes, maxReportBufferBytes)
	}
	return c, nil
}

// maxReportBufferBytes bounds ReportBufferBytes (per CPU) so that the ring
// of a machine with many CPUs stays within what the kernel maps.
const maxReportBufferBytes = 64 << 20

// maxRingBytes is the largest ring ringBytes asks for.
const maxRingBytes = 1 << 30

// ringBytes is the size of the report ring for cpus possible CPUs: a
// power of two (the kernel's rule) of at least one page.
func (c Config) ringBytes(cpus int) uint32 {
	want := min(uint64(c.ReportBufferBytes)*uint64(max(cpus, 1)), maxRingBytes)
	size := uint64(4096)
	for size < want {
		size <<= 1
	}
	return uint32(size)
}
