package countprog

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
)

func TestCountsAndReturnsVerdict(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading a BPF program needs root")
	}
	for _, verdict := range []int32{Next, OK} {
		c, err := Load("count_test", verdict)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		for range 3 {
			ret, err := c.Prog.Run(&ebpf.RunOptions{Data: make([]byte, 64)}) // an Ethernet frame's worth of zeroes
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if int32(ret) != verdict {
				t.Errorf("verdict %d, want %d", int32(ret), verdict)
			}
		}
		if n, err := c.Count(); err != nil || n != 3 {
			t.Errorf("count = %d, %v; want 3", n, err)
		}
	}
}
