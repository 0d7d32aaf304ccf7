package kind

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/kubee2e"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/netif"
)

// The two pods' net1 addresses: the upper half of the Docker network's /24
// (Docker gives the nodes' eth1 addresses from the lower half).
const (
	net1A = "198.18.100.201"
	net1B = "198.18.100.202"
)

// TestKindMultus: two pods on two workers, each with a Multus net1 (macvlan
// over the nodes' eth1); pod-a keeps TCP and UDP flows to pod-b over net1 and
// over eth0. The collector's view of net1 holds those pods' net1 traffic and
// nothing else; eth0 traffic is in the view of eth0; deleting pod-a removes
// its ports and keeps pod-b's.
func TestKindMultus(t *testing.T) {
	c := clusterFromEnv(t)
	workers := c.workers(t)
	ns := kubee2e.Namespace(t, c.kube, fmt.Sprintf("nsint-e2e-kind-%d", time.Now().Unix()%100000))
	c.createNAD(t, ns)
	b := c.startPod(t, ns, "pod-b", workers[1], net1B, nil)
	a := c.startPod(t, ns, "pod-a", workers[0], net1A, []string{b.net1, b.eth0})
	t.Logf("pod-a on %s: eth0 %s net1 %s; pod-b on %s: eth0 %s net1 %s", a.node, a.eth0, a.net1, b.node, b.eth0, b.net1)

	t.Run("Net1ViewShowsThosePodsNet1AndNothingElse", func(t *testing.T) { testNet1View(t, c, a, b) })
	t.Run("PodQualifiedNet1View", func(t *testing.T) { testPodNet1View(t, c, a) })
	t.Run("Eth0TrafficInTheEth0View", func(t *testing.T) { testEth0View(t, c, a, b) })
	t.Run("DeletedPodLosesItsPorts", func(t *testing.T) { testPodDeletion(t, c, a, b) })
}

// endpoints reports whether the row is a flow between x and y on the test
// port, in either direction.
func endpoints(r *flowtable.Row, proto, x, y string) bool {
	if !strings.EqualFold(r.Proto, proto) || (r.SrcPort != trafficPort && r.DstPort != trafficPort) {
		return false
	}
	return (r.Src == x && r.Dst == y) || (r.Src == y && r.Dst == x)
}

func testNet1View(t *testing.T, c *cluster, a, b pod) {
	network := a.namespace + "/" + nadName
	eth0Addrs := map[string]bool{a.eth0: true, b.eth0: true}
	kubee2e.Eventually(t, 3*time.Minute, "iface=net1 with both pods' TCP and UDP flows", func() error {
		rows, err := c.flows(url.Values{"iface": {"net1"}})
		if err != nil {
			return err
		}
		var wrong []string
		seen := map[string]bool{}
		for i := range rows {
			r := &rows[i]
			switch {
			case r.Interface != "net1":
				wrong = append(wrong, fmt.Sprintf("interface %q", r.Interface))
			case r.Pod == nil || r.Pod.Namespace != a.namespace || (r.Pod.Name != a.name && r.Pod.Name != b.name):
				wrong = append(wrong, fmt.Sprintf("a row of pod %+v (netns %+v, node %s)", r.Pod, r.Netns, r.Node))
			case r.Network != network:
				wrong = append(wrong, fmt.Sprintf("%s/%s net1 names network %q, want %q", r.Pod.Namespace, r.Pod.Name, r.Network, network))
			case eth0Addrs[r.Src] || eth0Addrs[r.Dst]:
				wrong = append(wrong, fmt.Sprintf("eth0 traffic %s %s -> %s at %s/%s net1", r.Proto, r.Src, r.Dst, r.Pod.Namespace, r.Pod.Name))
			default:
				for _, proto := range []string{"tcp", "udp"} {
					if endpoints(r, proto, a.net1, b.net1) {
						seen[r.Pod.Name+" "+proto] = true
					}
				}
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("iface=net1 lists rows it must not: %s", strings.Join(wrong, "; "))
		}
		for _, p := range []pod{a, b} {
			for _, proto := range []string{"tcp", "udp"} {
				if !seen[p.name+" "+proto] {
					return fmt.Errorf("no %s flow %s <-> %s at %s net1 (%d rows; %s)", proto, a.net1, b.net1, p, len(rows), c.agents())
				}
			}
		}
		return nil
	})
}

func testPodNet1View(t *testing.T, c *cluster, a pod) {
	rows, err := c.flows(url.Values{"iface": {a.String() + ":net1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("iface=%s:net1 lists nothing", a)
	}
	for _, r := range rows {
		if r.Interface != "net1" || r.Pod == nil || r.Pod.Namespace != a.namespace || r.Pod.Name != a.name {
			t.Errorf("iface=%s:net1 lists a row of %s at %+v", a, r.Interface, r.Pod)
		}
	}
}

// The eth0 flows are in the collector (so the net1 view left them out, not
// missed them).
func testEth0View(t *testing.T, c *cluster, a, b pod) {
	kubee2e.Eventually(t, 2*time.Minute, "pod-a's TCP and UDP over eth0 in iface=eth0", func() error {
		rows, err := c.flows(url.Values{"iface": {"eth0"}})
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for i := range rows {
			r := &rows[i]
			if r.Interface != "eth0" {
				return fmt.Errorf("iface=eth0 lists a row of %q", r.Interface)
			}
			if r.Pod != nil && r.Pod.Namespace == a.namespace {
				for _, proto := range []string{"tcp", "udp"} {
					if endpoints(r, proto, a.eth0, b.eth0) {
						seen[r.Pod.Name+" "+proto] = true
					}
				}
			}
		}
		for _, p := range []pod{a, b} {
			for _, proto := range []string{"tcp", "udp"} {
				if !seen[p.name+" "+proto] {
					return fmt.Errorf("no %s flow %s <-> %s at %s eth0 (%d eth0 rows)", proto, a.eth0, b.eth0, p, len(rows))
				}
			}
		}
		return nil
	})
}

// Deleting pod-a removes its ports (eth0, net1 and the rest of its network
// namespace) from the collector's port list; pod-b's stay.
func testPodDeletion(t *testing.T, c *cluster, a, b pod) {
	var inodes map[netif.Netns]bool
	kubee2e.Eventually(t, time.Minute, "pod-a's eth0 and net1 in the collector's ports", func() error {
		ports, err := c.ports()
		if err != nil {
			return err
		}
		inodes = map[netif.Netns]bool{}
		names := map[string]bool{}
		for _, p := range ports {
			if p.Pod != nil && p.Pod.Namespace == a.namespace && p.Pod.Name == a.name {
				names[p.Name] = true
				inodes[p.Netns.Inode] = true
			}
		}
		if !names["eth0"] || !names["net1"] {
			return fmt.Errorf("ports of %s: %v", a, names)
		}
		return nil
	})
	if err := kubee2e.DeletePod(c.kube, a.namespace, a.name, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	kubee2e.Eventually(t, 3*time.Minute, "pod-a's ports gone from the collector, pod-b's kept", func() error {
		ports, err := c.ports()
		if err != nil {
			return err
		}
		bNames := map[string]bool{}
		for _, p := range ports {
			if p.Pod != nil && p.Pod.Namespace == a.namespace && p.Pod.Name == a.name {
				return fmt.Errorf("port %d (%s) of the deleted %s still listed", p.ID, p.Name, a)
			}
			if inodes[p.Netns.Inode] {
				return fmt.Errorf("port %d (%s) of the deleted pod's network namespace %d still listed", p.ID, p.Name, p.Netns.Inode)
			}
			if p.Pod != nil && p.Pod.Namespace == b.namespace && p.Pod.Name == b.name {
				bNames[p.Name] = true
			}
		}
		if !bNames["eth0"] || !bNames["net1"] {
			return fmt.Errorf("pod-b's ports went too: %v", bNames)
		}
		return nil
	})
}
