package cluster

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nsint/nsint/pkg/k8s/k8stest"
)

func renderDir(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return k8stest.Render(t, filepath.Join(k8stest.RepoRoot(t), "deploy", dir))
}

func object(t *testing.T, objs []*unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no %s %s", kind, name)
}

// The local overlay (no cluster needed) keeps the agent's security settings
// and changes only what the harness's node needs.
func TestLocalOverlay(t *testing.T) {
	base, local := renderDir(t, "base"), renderDir(t, "overlays/local")
	if len(local) != len(base)+1 {
		t.Errorf("local overlay renders %d objects, want the base's %d and one NetworkAttachmentDefinition", len(local), len(base))
	}
	var b, l appsv1.DaemonSet
	object(t, base, "DaemonSet", "nsint-agent", &b)
	object(t, local, "DaemonSet", "nsint-agent", &l)
	bc, lc := b.Spec.Template.Spec.Containers[0], l.Spec.Template.Spec.Containers[0]
	if !reflect.DeepEqual(bc.SecurityContext, lc.SecurityContext) || !reflect.DeepEqual(bc.VolumeMounts, lc.VolumeMounts) {
		t.Error("the overlay changes the agent's securityContext or mounts")
	}
	if lc.Image != "nsint.local/agent:dev" || lc.ImagePullPolicy != corev1.PullNever {
		t.Errorf("agent image %s pull %s", lc.Image, lc.ImagePullPolicy)
	}
	paths := map[string]string{}
	for _, v := range l.Spec.Template.Spec.Volumes {
		if v.HostPath != nil {
			paths[v.Name] = v.HostPath.Path
		}
	}
	want := map[string]string{"netns": "/run/netns", "bpffs": clusterWork + "/node/bpffs", "state": clusterWork + "/node/state"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("agent hostPaths %v, want %v", paths, want)
	}
	var cm corev1.ConfigMap
	object(t, local, "ConfigMap", "nsint-agent", &cm)
	for _, s := range []string{"host-netns: false", "include netns=cni-*", nodeIP + ":32766"} {
		if !strings.Contains(cm.Data["agent.yaml"], s) {
			t.Errorf("agent.yaml lacks %q", s)
		}
	}
	var coll appsv1.Deployment
	object(t, local, "Deployment", "nsint-collector", &coll)
	if c := coll.Spec.Template.Spec.Containers[0]; c.Image != "nsint.local/collector:dev" || !coll.Spec.Template.Spec.HostNetwork ||
		!strings.Contains(strings.Join(c.Args, " "), "$(NSINT_NODE_IP):8080") {
		t.Errorf("collector: image %s hostNetwork %v args %v", c.Image, coll.Spec.Template.Spec.HostNetwork, c.Args)
	}
}
