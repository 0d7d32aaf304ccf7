package datapath

import (
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
	DefaultPerCPUBufferBytes  = 256 << 10
	DefaultWakeupEvents       = 1

	// MaxSnapLen is the largest SnapLen the programs can capture.
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
	// PerCPUBufferBytes is the perf ring size of each CPU.
	PerCPUBufferBytes int
	// WakeupEvents is how many events a CPU's ring holds before the
	// reader is woken.
	WakeupEvents int

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
		PerCPUBufferBytes:  DefaultPerCPUBufferBytes,
		WakeupEvents:       DefaultWakeupEvents,
	}
}

func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.ReportInterval == 0 {
		c.ReportInterval = d.ReportInterval
	}
	if c.DropReportInterval == 0 {
		c.DropReportInterval = d.DropReportInterval
	}
	if c.SnapLen == 0 {
		c.SnapLen = d.SnapLen
	}
	if c.MaxFlows == 0 {
		c.MaxFlows = d.MaxFlows
	}
	if c.MaxPorts == 0 {
		c.MaxPorts = d.MaxPorts
	}
	if c.PerCPUBufferBytes == 0 {
		c.PerCPUBufferBytes = d.PerCPUBufferBytes
	}
	if c.WakeupEvents == 0 {
		c.WakeupEvents = d.WakeupEvents
	}
	switch {
	case c.ReportInterval < 0 || c.DropReportInterval < 0:
		return c, fmt.Errorf("config: negative interval")
	case c.SnapLen > MaxSnapLen:
		return c, fmt.Errorf("config: snap length %d above %d", c.SnapLen, MaxSnapLen)
	case c.MaxPorts < 2 || c.MaxPorts > 0xffff: // 0xffff is the C "local" marker
		return c, fmt.Errorf("config: max ports %d outside 2..65535", c.MaxPorts)
	case c.PerCPUBufferBytes < 0 || c.WakeupEvents < 0:
		return c, fmt.Errorf("config: negative perf buffer size or wakeup count")
	}
	return c, nil
}
