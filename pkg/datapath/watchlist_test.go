package datapath

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/nsint/nsint/pkg/netif"
	"github.com/nsint/nsint/pkg/watchlist"
)

func TestRuleCompile(t *testing.T) {
	r, err := compileRule(watchlist.Rule{Proto: protoTCP, Dst: netip.MustParsePrefix("198.18.4.7/22"), DstPort: watchlist.PortRange{Lo: 80, Hi: 90}})
	must(t, err)
	if r.Family != 4 || r.Proto != protoTCP || r.SportLo != 0 || r.SportHi != 0xffff || r.DportLo != 80 || r.DportHi != 90 {
		t.Errorf("compiled %+v", r)
	}
	// 198.18.4.0/22 in network byte order, as the programs load it.
	wantNet := [4]byte{198, 18, 4, 0}
	wantMask := [4]byte{255, 255, 252, 0}
	gotNet := *(*[4]byte)(unsafe.Pointer(&r.Dst[0]))
	gotMask := *(*[4]byte)(unsafe.Pointer(&r.DstMask[0]))
	if gotNet != wantNet || gotMask != wantMask || r.Dst[1] != 0 || r.DstMask[1] != 0 {
		t.Errorf("dst %v/%v, want %v/%v", gotNet, gotMask, wantNet, wantMask)
	}
	if _, err := compileRule(watchlist.Rule{Src: netip.MustParsePrefix("fd00::/8"), Dst: netip.MustParsePrefix("198.18.0.0/15")}); err == nil {
		t.Error("mixed families: no error")
	}
	if _, err := compileRule(watchlist.Rule{DstPort: watchlist.PortRange{Lo: 9, Hi: 1}}); err == nil {
		t.Error("inverted port range: no error")
	}
}

// TestWatchlist: only watched flows report; an empty list reports all; a
// new list applies to existing flows at their next refresh.
func TestWatchlist(t *testing.T) {
	const interval = 200 * time.Millisecond
	h := newHarness(t, Config{ReportInterval: interval})
	must(t, h.d.SetWatchlist([]watchlist.Rule{
		{Proto: protoUDP, Dst: netip.MustParsePrefix("198.18.5.0/24"), DstPort: watchlist.PortRange{Lo: 53, Hi: 53}},
		{Src: netip.MustParsePrefix("fd00:1::/32")},
	}))
	v6 := func(src string) []byte {
		return concat(ethHdr(etherIPv6), ipv6Hdr(protoTCP, netip.MustParseAddr(src), netip.MustParseAddr("fd00::2")), tcpHdr(1, 2))
	}
	cases := []struct {
		name    string
		frame   []byte
		watched bool
	}{
		{"udp to watched prefix and port", udpFrame("198.18.0.1", "198.18.5.9", 1, 53, 0), true},
		{"udp to watched prefix, other port", udpFrame("198.18.0.1", "198.18.5.9", 1, 54, 0), false},
		{"udp outside the prefix", udpFrame("198.18.0.1", "198.18.6.9", 1, 53, 0), false},
		{"ipv6 from watched prefix", v6("fd00:1::5"), true},
		{"ipv6 from elsewhere", v6("fd00:2::5"), false},
	}
	for _, c := range cases {
		h.run(hPortA, netif.Ingress, c.frame, nil)
		if c.watched {
			if ev := h.next(); ev.Reason != ReasonNew {
				t.Errorf("%s: reason %s", c.name, ev.Reason)
			}
		} else {
			h.none(c.name)
		}
	}
	st, err := h.d.Stats()
	must(t, err)
	if st.Unwatched != 3 {
		t.Errorf("unwatched counter %d, want 3", st.Unwatched)
	}

	// Empty list: the unwatched flows report at their next refresh.
	must(t, h.d.SetWatchlist(nil))
	time.Sleep(interval + 50*time.Millisecond)
	for _, c := range cases {
		h.run(hPortA, netif.Ingress, c.frame, nil)
		ev := h.next()
		if ev.Reason != ReasonRefresh || ev.Packets != 1 {
			t.Errorf("%s after clearing the watchlist: %s with %d packets, want refresh with 1", c.name, ev.Reason, ev.Packets)
		}
	}
	if err := h.d.SetWatchlist(make([]watchlist.Rule, watchlist.MaxRules+1)); err == nil {
		t.Error("too many rules: no error")
	}
}
