package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	nadutils "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/utils"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nsint/nsint/internal/fakenode"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/k8s/k8stest"
)

// The agent, with exactly the permissions deploy/ grants, names each port with
// its pod, network and role from Multus's network-status annotation, in the
// topology and in its metrics.
func TestKubernetesNames(t *testing.T) {
	netnstest.RequireRoot(t)
	root := k8stest.RepoRoot(t)
	env := k8stest.Start(t, filepath.Join(root, "deploy", "overlays", "kind", "network-attachment-definition-crd.yaml"))
	applier := k8stest.NewApplier(t, env.Admin)
	for _, o := range k8stest.Render(t, filepath.Join(root, "deploy", "base")) {
		if err := applier.Apply(t.Context(), o, false); err != nil {
			t.Fatal(err)
		}
	}
	kubeconfig := k8stest.WriteKubeconfig(t, k8stest.ServiceAccountConfig(env.Admin, "nsint", "nsint-agent"))

	dir := netnstest.Dir(t)
	node, err := fakenode.Build(dir, netnstest.Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	a, err := node.AddPod("a")
	if err != nil {
		t.Fatal(err)
	}

	ctx := t.Context()
	nads, err := nadclient.NewForConfig(env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	nad := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "macvlan-net"},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"0.4.0","name":"macvlan-net","type":"macvlan","mode":"bridge"}`},
	}
	if _, err := nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions("default").Create(ctx, nad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pod-a"},
		Spec:       corev1.PodSpec{NodeName: "e2e-node", Containers: []corev1.Container{{Name: "c", Image: "nsint.local/none"}}},
	}
	if pod, err = env.Kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = a.EthIP.String()
	pod.Status.PodIPs = []corev1.PodIP{{IP: a.EthIP.String()}}
	if pod, err = env.Kube.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// network-status as Multus writes it: the default network and net1.
	h := a.NS.NetlinkHandle(t)
	mac := func(name string) string {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().HardwareAddr.String()
	}
	statuses := []nadv1.NetworkStatus{
		{Name: "cbr0", Interface: "eth0", Mac: mac("eth0"), IPs: []string{a.EthIP.String()}, Default: true},
		{Name: "default/macvlan-net", Interface: "net1", Mac: mac("net1"), IPs: []string{a.Net1IP.String()}},
	}
	if err := nadutils.SetNetworkStatus(env.Kube, pod, statuses); err != nil {
		t.Fatal(err)
	}

	rcv := newReceiver(t)
	agentEnv := newAgentEnv(t, dir, rcv.addr(), "--kubeconfig", kubeconfig, "--kubernetes", "on", "--api-auth", "none")
	ag := agentEnv.start(t)

	byName := func() map[string]api.Port {
		out := map[string]api.Port{}
		for _, p := range ag.topology(t).Ports {
			if p.Netns.Name == a.NS.Name {
				out[p.Name] = p
			}
		}
		return out
	}
	waitFor(t, "pod a's net1 named by Kubernetes", 30*time.Second, func() bool {
		return byName()["net1"].Pod != nil
	})
	ports := byName()
	net1, eth0, stack := ports["net1"], ports["eth0"], ports[api.LocalStackName]
	if *net1.Pod != (api.Pod{Namespace: "default", Name: "pod-a", UID: string(pod.UID)}) ||
		net1.Network != "default/macvlan-net" || net1.Role != "secondary" || net1.NetworkType != "macvlan" {
		t.Errorf("net1 = %+v (pod %+v)", net1, net1.Pod)
	}
	if eth0.Pod == nil || eth0.Pod.Name != "pod-a" || eth0.Role != "primary" {
		t.Errorf("eth0 = %+v", eth0)
	}
	if stack.Pod == nil || stack.Pod.Name != "pod-a" {
		t.Errorf("local stack port of pod a has no pod: %+v", stack)
	}
	for _, p := range ag.topology(t).Ports {
		if p.Netns.Name != a.NS.Name && p.Pod != nil {
			t.Errorf("port %s in %s named with pod %+v", p.Name, p.Netns.Name, p.Pod)
		}
	}
	want := fmt.Sprintf(`interface="net1",netns="%s",network="default/macvlan-net",node="e2e-node",pod="pod-a",pod_namespace="default"`, a.NS.Name)
	if m := ag.metrics(t); !strings.Contains(m, want) {
		t.Errorf("metrics lack %s", want)
	}
}
