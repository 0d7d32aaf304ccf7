package k8s_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	nadutils "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/utils"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/k8s"
	"github.com/nsint/nsint/pkg/k8s/k8stest"
	"github.com/nsint/nsint/pkg/netif"
)

const (
	nodeName  = "node-a"
	podNS     = "ns1"
	agentNS   = "nsint"
	agentSA   = "nsint-agent"
	nadName   = "macvlan-net"
	waitLimit = 60 * time.Second
)

// startServer runs the API server with the NAD CRD and deploy/base applied for
// real, and returns it with a configuration impersonating the agent's
// ServiceAccount (exactly the permissions deploy/ grants).
func startServer(t *testing.T) (*k8stest.Env, *rest.Config) {
	t.Helper()
	root := k8stest.RepoRoot(t)
	env := k8stest.Start(t, filepath.Join(root, "deploy", "overlays", "kind", "network-attachment-definition-crd.yaml"))
	applier := k8stest.NewApplier(t, env.Admin)
	for _, o := range k8stest.Render(t, filepath.Join(root, "deploy", "base")) {
		if err := applier.Apply(t.Context(), o, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: podNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return env, k8stest.ServiceAccountConfig(env.Admin, agentNS, agentSA)
}

// podNetns is a test namespace standing in for a pod's: eth0 (a veth to the
// host) with the pod IP and net1 (a macvlan on a host veth the test made).
type podNetns struct {
	ns     *netnstest.NS
	ifaces []k8s.Iface // as the agent would discover them, read over netlink
}

func newPodNetns(t *testing.T, dir, prefix, tag, podCIDR, net1CIDR string) *podNetns {
	t.Helper()
	ns := netnstest.New(t, dir, prefix+tag)
	netnstest.Veth(t, ns, "eth0", nil, prefix+tag+"h")
	netnstest.AddAddr(t, ns, "eth0", podCIDR)
	netnstest.Veth(t, nil, prefix+tag+"p", nil, prefix+tag+"q")
	netnstest.Macvlan(t, prefix+tag+"p", ns, "net1")
	netnstest.AddAddr(t, ns, "net1", net1CIDR)

	h := ns.NetlinkHandle(t)
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	p := &podNetns{ns: ns}
	for _, l := range links {
		f := k8s.Iface{ID: netif.ID{Netns: netif.Netns(ns.Inode)}, NetnsPath: ns.Path, Name: l.Attrs().Name, MAC: l.Attrs().HardwareAddr}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				f.IPs = append(f.IPs, ip.Unmap())
			}
		}
		p.ifaces = append(p.ifaces, f)
	}
	return p
}

func (p *podNetns) iface(t *testing.T, name string) k8s.Iface {
	t.Helper()
	for _, f := range p.ifaces {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no %s in %s", name, p.ns.Path)
	return k8s.Iface{}
}

// status is a network-status entry for iface, as Multus writes it.
func status(f k8s.Iface, network string, dflt bool) nadv1.NetworkStatus {
	s := nadv1.NetworkStatus{Name: network, Interface: f.Name, Mac: f.MAC.String(), Default: dflt}
	for _, ip := range f.IPs {
		s.IPs = append(s.IPs, ip.String())
	}
	return s
}

func createPod(t *testing.T, kube kubernetes.Interface, name, node string, ips ...netip.Addr) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: podNS, Name: name},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "nsint.local/none"}}},
	}
	pod, err := kube.CoreV1().Pods(podNS).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	for _, ip := range ips {
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if len(ips) > 0 {
		pod.Status.PodIP = ips[0].String()
	}
	pod, err = kube.CoreV1().Pods(podNS).UpdateStatus(t.Context(), pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// waitFor re-matches on every change signal until cond holds.
func waitFor(t *testing.T, e *k8s.Enricher, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitLimit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-e.Changes():
		case <-tick.C:
		case <-deadline:
			t.Fatalf("gave up waiting: %s (stats %+v)", what, e.Stats())
		}
	}
}

func runEnricher(t *testing.T, cfg k8s.Config) *k8s.Enricher {
	t.Helper()
	e, err := k8s.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

func TestEnricherAgainstAPIServer(t *testing.T) {
	netnstest.RequireRoot(t)
	env, agentCfg := startServer(t)
	ctx := t.Context()
	prefix := netnstest.Prefix(t)
	dir := netnstest.Dir(t)
	a := newPodNetns(t, dir, prefix, "a", "198.18.6.2/24", "198.18.7.2/24")
	m := newPodNetns(t, dir, prefix, "m", "198.18.6.3/24", "198.18.7.3/24")
	other := newPodNetns(t, dir, prefix, "o", "198.18.6.4/24", "198.18.7.4/24")
	all := append(append(append([]k8s.Iface{}, a.ifaces...), m.ifaces...), other.ifaces...)

	nads, err := nadclient.NewForConfig(env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	nad := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: podNS, Name: nadName},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"0.4.0","name":"macvlan-net","type":"macvlan","mode":"bridge"}`},
	}
	if _, err := nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions(podNS).Create(ctx, nad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	malformed := map[string]int{}
	e := runEnricher(t, k8s.Config{NodeName: nodeName, REST: agentCfg, OnMalformed: func(p k8s.PodRef, err error) {
		mu.Lock()
		malformed[p.Name]++
		mu.Unlock()
	}})

	// Pod a: Multus wrote only the default network so far.
	eth0, net1 := a.iface(t, "eth0"), a.iface(t, "net1")
	podA := createPod(t, env.Kube, "pod-a", nodeName, eth0.IPs...)
	if err := nadutils.SetNetworkStatus(env.Kube, podA, []nadv1.NetworkStatus{status(eth0, "cbr0", true)}); err != nil {
		t.Fatal(err)
	}
	// A pod of another node whose addresses are those of namespace "other".
	createPod(t, env.Kube, "pod-other-node", "node-b", other.iface(t, "eth0").IPs...)

	find := func(ns *netnstest.NS, name string) (k8s.Meta, bool) {
		for i, meta := range e.Match(all) {
			if all[i].Netns == netif.Netns(ns.Inode) && all[i].Name == name {
				return meta, true
			}
		}
		return k8s.Meta{}, false
	}
	waitFor(t, e, "pod-a eth0 matched", func() bool { _, ok := find(a.ns, "eth0"); return ok })
	got, _ := find(a.ns, "eth0")
	want := k8s.Meta{Pod: k8s.PodRef{Namespace: podNS, Name: "pod-a", UID: string(podA.UID)}, Network: "cbr0", Role: k8s.RolePrimary, Interface: "eth0"}
	if got != want {
		t.Errorf("pod-a eth0: got %+v, want %+v", got, want)
	}
	if meta, ok := find(a.ns, "net1"); ok {
		t.Errorf("net1 matched before network-status named it: %+v", meta)
	}

	// The annotation gains the macvlan network.
	if err := nadutils.SetNetworkStatus(env.Kube, podA, []nadv1.NetworkStatus{
		status(eth0, "cbr0", true), status(net1, podNS+"/"+nadName, false),
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, "pod-a net1 matched", func() bool { _, ok := find(a.ns, "net1"); return ok })
	got, _ = find(a.ns, "net1")
	want = k8s.Meta{Pod: want.Pod, Network: podNS + "/" + nadName, Role: k8s.RoleSecondary, NetworkType: "macvlan", Interface: "net1"}
	if got != want {
		t.Errorf("pod-a net1: got %+v, want %+v", got, want)
	}

	// A malformed annotation: reported once (also across updates), and eth0
	// still matched through status.podIPs.
	podM := createPod(t, env.Kube, "pod-malformed", nodeName, m.iface(t, "eth0").IPs...)
	podM.Annotations = map[string]string{nadv1.NetworkStatusAnnot: `[{"name": "cbr0", "interface": `}
	if podM, err = env.Kube.CoreV1().Pods(podNS).Update(ctx, podM, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	podM.Labels = map[string]string{"touched": "yes"}
	if _, err = env.Kube.CoreV1().Pods(podNS).Update(ctx, podM, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, "pod-malformed eth0 matched by podIPs", func() bool {
		meta, ok := find(m.ns, "eth0")
		return ok && meta.Pod.Name == "pod-malformed" && meta.Role == k8s.RolePrimary
	})
	if meta, ok := find(m.ns, "net1"); ok {
		t.Errorf("net1 of the malformed pod matched without a network-status: %+v", meta)
	}

	// The pod of the other node is not even known to the agent.
	for _, f := range other.ifaces {
		if meta, ok := find(other.ns, f.Name); ok {
			t.Errorf("%s of namespace %s attributed from another node's pod: %+v", f.Name, other.ns.Name, meta)
		}
	}

	// Deleting pod a removes its names.
	if err := env.Kube.CoreV1().Pods(podNS).Delete(ctx, "pod-a", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, "pod-a forgotten", func() bool {
		_, ok1 := find(a.ns, "eth0")
		_, ok2 := find(a.ns, "net1")
		return !ok1 && !ok2
	})
	// Events arrive in order: the label update of pod-malformed came before.
	mu.Lock()
	if malformed["pod-malformed"] != 1 || len(malformed) != 1 {
		t.Errorf("malformed reports %v, want exactly one, for pod-malformed", malformed)
	}
	mu.Unlock()
	s := e.Stats()
	if !s.PodsSynced || !s.NADsSynced || s.Pods != 1 || s.NADs != 1 || s.MalformedAnnotations != 1 {
		t.Errorf("stats %+v, want synced, 1 pod, 1 NAD, 1 malformed", s)
	}
	if s.WatchErrors != 0 {
		t.Errorf("the agent's permissions were not enough: %d list/watch errors, last %q", s.WatchErrors, s.LastWatchError)
	}
}
