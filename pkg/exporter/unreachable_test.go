package exporter

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/intreport"
)

// TestNoRouteThenRouteThenNoRoute runs the exporter inside a test namespace
// whose only route is loopback. One collector, 198.18.0.1, has no route when
// the exporter starts (connect fails with ENETUNREACH), gets one when the
// address appears on lo, loses it again and gets it back; the other collector
// on 127.0.0.1 receives every report throughout.
func TestNoRouteThenRouteThenNoRoute(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, netnstest.Dir(t), netnstest.Prefix(t))

	const far = "198.18.0.1:32766"
	var (
		e          *Exporter
		near, away *receiver
	)
	err := ns.Do(func() error {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		near = serve(t, conn)
		e, err = New(Config{
			Collectors:    []string{far, near.addr()},
			Format:        intreport.V20,
			RetryInterval: 20 * time.Millisecond,
		})
		return err
	})
	if err != nil {
		t.Fatalf("in netns %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { e.Close() })
	run(t, e)

	// A steady trickle of reports while the routes change.
	var sent atomic.Int64
	stopProducer := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stopProducer:
				return
			case <-time.After(time.Millisecond):
			}
			if e.Enqueue(testReport(i, hwPattern(i))) {
				sent.Add(1)
			} else {
				t.Errorf("report %d refused by a queue that a running sender drains", i)
				return
			}
		}
	}()
	stop := func() { close(stopProducer); wg.Wait() }

	farStats := func() CollectorStats { return e.Stats().Collectors[0] }
	unreachable := func(what string) {
		t.Helper()
		before := farStats().Dropped
		eventually(t, what, func() bool {
			c := farStats()
			return c.Dropped > before+5 && errors.Is(c.LastError, unix.ENETUNREACH)
		})
	}

	unreachable("ENETUNREACH with no route at start")

	netnstest.AddAddr(t, ns, "lo", "198.18.0.1/32")
	err = ns.Do(func() error {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(198, 18, 0, 1), Port: 32766})
		if err != nil {
			return err
		}
		away = serve(t, conn)
		return nil
	})
	if err != nil {
		t.Fatalf("listen on %s in netns %s: %v", far, ns.Name, err)
	}
	eventually(t, "reports once the route exists", func() bool { return away.count() >= 10 })

	ns.Run(t, "ip", "addr", "del", "198.18.0.1/32", "dev", "lo")
	unreachable("ENETUNREACH once the route is gone")

	netnstest.AddAddr(t, ns, "lo", "198.18.0.1/32")
	resumed := away.count()
	eventually(t, "reports once the route is back", func() bool { return away.count() >= resumed+10 })

	stop()
	n := int(sent.Load())
	eventually(t, "the near collector to get everything", func() bool { return near.count() >= n })
	checkAll(t, intreport.V20, "127.0.0.1", near.payloads(), n)
	if c := e.Stats().Collectors[1]; c.Errors != 0 || c.Dropped != 0 || c.Sent != uint64(n) {
		t.Errorf("near collector %+v, want %d sent and no error", c, n)
	}
	eventually(t, "the far collector to read what was sent to it", func() bool {
		return away.count() >= int(farStats().Sent)
	})
	c := farStats()
	if c.Sent+c.Dropped != uint64(n) || c.Sent != uint64(away.count()) {
		t.Errorf("far collector %+v with %d received: sent+dropped should be the %d enqueued", c, away.count(), n)
	}
}
