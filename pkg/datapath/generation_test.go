package datapath

import (
	"testing"

	"github.com/nsint/nsint/bpf"
)

func TestGenerationID(t *testing.T) {
	id := newGenerationID()
	if !isGenerationID(id) {
		t.Errorf("isGenerationID(%q) = false", id)
	}
	for _, bad := range []string{"", "tcx", "123-45", "1796520393821213079", "1796520393821213079-x", "x796520393821213079-1"} {
		if isGenerationID(bad) {
			t.Errorf("isGenerationID(%q) = true", bad)
		}
	}
}

// TestLayoutID: the layout ID is stable for one build and changes with the
// layout of a pinned map.
func TestLayoutID(t *testing.T) {
	a, err := layoutID()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := layoutID(); err != nil || a != b {
		t.Fatalf("layout ID %s then %s (%v)", a, b, err)
	}
	spec, err := bpf.LoadNsint()
	if err != nil {
		t.Fatal(err)
	}
	// Another value type for the drop table: that of the flow table.
	spec.Maps[bpf.NsintMapDropFlows].Value = spec.Maps[bpf.NsintMapFlows].Value
	c, err := layoutOf(spec)
	if err != nil {
		t.Fatal(err)
	}
	if c == a {
		t.Errorf("layout ID %s unchanged by another drop_flows value type", a)
	}
}
