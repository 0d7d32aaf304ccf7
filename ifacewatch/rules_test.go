package ifacewatch

import (
	"errors"
	"strings"
	"testing"

	"github.com/nsint/nsint/ifacewatch/selection"
	"github.com/nsint/nsint/internal/netnstest"
)

// A rule with no condition, built by hand, is refused.
func TestNewRejectsBadRule(t *testing.T) {
	if _, err := New(Config{Rules: []selection.Rule{{Exclude: true}}}); !errors.Is(err, selection.ErrBadRule) {
		t.Errorf("New accepted a rule with no condition: %v", err)
	}
}

func TestSelector(t *testing.T) {
	mustRules := func(ss ...string) []selection.Rule {
		var out []selection.Rule
		for _, s := range ss {
			r, err := selection.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	host := Namespace{ID: 1, Host: true}
	pod := Namespace{ID: 2, Name: "cni-1234", Path: "/var/run/netns/cni-1234"}
	other := Namespace{ID: 3, Name: "host"} // a file literally named host is not the host
	cases := []struct {
		rules []string
		ns    Namespace
		iface Interface
		want  bool
	}{
		{nil, host, Interface{Name: "eth0"}, true},
		{[]string{"include name=net1"}, pod, Interface{Name: "net1"}, true},
		{[]string{"include name=net1"}, pod, Interface{Name: "net10"}, false},
		{[]string{"include name=net*"}, pod, Interface{Name: "net10"}, true},
		{[]string{"exclude netns=host"}, host, Interface{Name: "eth0"}, false},
		{[]string{"exclude netns=host"}, pod, Interface{Name: "eth0"}, true},
		{[]string{"exclude netns=host"}, other, Interface{Name: "eth0"}, true},
		{[]string{"include netns=*"}, host, Interface{Name: "eth0"}, false},
		{[]string{"include netns=*"}, pod, Interface{Name: "eth0"}, true},
		{[]string{"include name=net*,kind=macvlan,netns=cni-*"}, pod, Interface{Name: "net1", Kind: "macvlan"}, true},
		{[]string{"include name=net*,kind=macvlan,netns=cni-*"}, pod, Interface{Name: "net1", Kind: "vf"}, false},
		{[]string{"include kind=vf", "include kind=macvlan"}, pod, Interface{Name: "net1", Kind: "vf"}, true},
		{[]string{"include name=*", "exclude kind=loopback"}, pod, Interface{Name: "lo", Kind: KindLoopback}, false},
		{[]string{"exclude kind=loopback", "include name=*"}, pod, Interface{Name: "eth0", Kind: "veth"}, true},
	}
	for _, c := range cases {
		s, err := newSelector(mustRules(c.rules...))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.selected(c.ns, &c.iface); got != c.want {
			t.Errorf("rules %q, netns %+v, iface %s/%s: selected %v, want %v", c.rules, c.ns, c.iface.Name, c.iface.Kind, got, c.want)
		}
	}
}

// The host namespace, watched read-only: the test asserts only on the
// interfaces it created there (a rule hides every other host interface).
func TestHostNamespace(t *testing.T) {
	netnstest.RequireRoot(t)
	p := netnstest.Prefix(t)
	r, err := selection.Parse("include netns=host,name=" + p + "*")
	if err != nil {
		t.Fatal(err)
	}
	h := startWatcher(t, Config{Dirs: []string{}, HostNetns: true, Rules: []selection.Rule{r}}, nil)
	netnstest.Veth(t, nil, p+"h0", nil, p+"h1")
	h.waitFor("both host veth ends", func(evs []Event) bool {
		return len(evs) > 0 && has(evs, IfaceAdded, evs[0].Netns.ID, p+"h0") && has(evs, IfaceAdded, evs[0].Netns.ID, p+"h1")
	})
	evs := h.all()
	if evs[0].Kind != NetnsAdded || !evs[0].Netns.Host {
		t.Fatalf("first event %v is not the host namespace", evs[0])
	}
	for _, ev := range evs[1:] {
		if ev.Iface == nil || !strings.HasPrefix(ev.Iface.Name, p) {
			t.Errorf("unexpected event %v", ev)
		}
	}
	h0 := find(evs, IfaceAdded, evs[0].Netns.ID, p+"h0").Iface
	if h0.Kind != "veth" || h0.LinkNetns != evs[0].Netns.ID {
		t.Errorf("host veth = %+v", h0)
	}
}
