package bench

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/nsint/nsint/pkg/collector/flowkey"
	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/netif"
)

// report is what the suite keeps of one received INT report.
type report struct {
	at                   time.Time
	kind                 intreport.Kind
	obsPort, inPort, out uint16
	packets              uint64
	tuple                flowkey.Tuple
}

// receiver is a UDP collector on loopback that decodes every report. It can
// be closed and reopened on the same port (a collector outage).
type receiver struct {
	addr *net.UDPAddr

	mu    sync.Mutex
	conn  *net.UDPConn
	done  chan struct{}
	reps  []report
	bad   int
	total int
	keep  bool // keep every report (else count only)
	seen  map[uint16]time.Time
	sums  map[flowAt]flowSum
}

// flowAt is a flow's observation point as v2.0 reports name it: port,
// direction, and the flow's destination (the soak's flows to one pod differ
// only by their port).
type flowAt struct {
	port  uint16
	dir   netif.Direction
	dst   netip.Addr
	dport uint16
}

// flowSum is what the reports of one flowAt add up to.
type flowSum struct{ packets, drops uint64 }

func newReceiver(keep bool) (*receiver, error) {
	r := &receiver{keep: keep, seen: map[uint16]time.Time{}, sums: map[flowAt]flowSum{}}
	if err := r.open(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *receiver) open(addr *net.UDPAddr) error {
	c, err := net.ListenUDP("udp", addr)
	if err != nil {
		return err
	}
	c.SetReadBuffer(8 << 20)
	r.mu.Lock()
	r.conn, r.addr, r.done = c, c.LocalAddr().(*net.UDPAddr), make(chan struct{})
	done := r.done
	r.mu.Unlock()
	go r.loop(c, done)
	return nil
}

// reopen listens again on the same address after close.
func (r *receiver) reopen() error { return r.open(r.addr) }

func (r *receiver) close() {
	r.mu.Lock()
	c, done := r.conn, r.done
	r.conn = nil
	r.mu.Unlock()
	if c != nil {
		c.Close()
		<-done
	}
}

func (r *receiver) String() string { return r.addr.String() }

func (r *receiver) loop(c *net.UDPConn, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 65536)
	var d intreport.Decoded
	for {
		n, err := c.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		at := time.Now()
		err = intreport.Decode(buf[:n], &d)
		r.mu.Lock()
		if err != nil {
			r.bad++
		}
		for i := range d.Reports {
			rep := &d.Reports[i]
			rec := report{at: at, kind: rep.Kind, obsPort: rep.ObservationPort, inPort: rep.IngressPort,
				out: rep.EgressPort, packets: rep.Packets}
			flowkey.Parse(rep.Inner, flowkey.LayerEthernet, &rec.tuple)
			r.total++
			if rep.ObservationPort != 0 {
				k := flowAt{rep.ObservationPort, rep.Direction, rec.tuple.Dst, rec.tuple.DstPort}
				sum := r.sums[k]
				if rep.Kind == intreport.Drop {
					sum.drops += rep.Packets
				} else {
					sum.packets += rep.Packets
				}
				r.sums[k] = sum
			}
			for _, p := range [3]uint16{rec.obsPort, rec.inPort, rec.out} {
				if p != 0 {
					r.seen[p] = at
				}
			}
			if r.keep {
				r.reps = append(r.reps, rec)
			}
		}
		r.mu.Unlock()
	}
}

// count is the number of reports received so far.
func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// malformed is the number of datagrams that did not decode.
func (r *receiver) malformed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

// portSeen returns when a report last named port (as observation, ingress
// or egress port).
func (r *receiver) portSeen(port uint16) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.seen[port]
	return at, ok
}

// matching returns the kept reports for which keep returns true.
func (r *receiver) matching(keep func(*report) bool) []report {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []report
	for i := range r.reps {
		if keep(&r.reps[i]) {
			out = append(out, r.reps[i])
		}
	}
	return out
}

// sum is what the v2.0 reports of one flow at one observation point add up
// to so far.
func (r *receiver) sum(at flowAt) flowSum {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sums[at]
}

// reset forgets the kept reports.
func (r *receiver) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reps = nil
}
