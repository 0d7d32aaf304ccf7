package kind

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nsint/nsint/pkg/k8s/k8stest"
)

// versions reads hack/kind/versions.env (KEY=value lines).
func versions(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(k8stest.RepoRoot(t), "hack", "kind", "versions.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(v, "$`\"' ") {
			t.Fatalf("versions.env: %q is not a plain KEY=value line", line)
		}
		out[k] = v
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	semver      = regexp.MustCompile(`^v\d+\.\d+\.\d+$`)
	nodeImageRe = regexp.MustCompile(`^kindest/node:(v\d+\.\d+)\.\d+@sha256:[0-9a-f]{64}$`)
)

// Every tool is pinned to an exact version, the node image by digest, and
// kubectl is of the node image's minor version.
func TestVersionsArePinned(t *testing.T) {
	v := versions(t)
	for _, k := range []string{"KIND_VERSION", "KUBECTL_VERSION", "CNI_PLUGINS_VERSION"} {
		if !semver.MatchString(v[k]) {
			t.Errorf("%s=%q: want an exact vX.Y.Z", k, v[k])
		}
	}
	m := nodeImageRe.FindStringSubmatch(v["KIND_NODE_IMAGE"])
	if m == nil {
		t.Fatalf("KIND_NODE_IMAGE=%q: want kindest/node:vX.Y.Z@sha256:<digest>", v["KIND_NODE_IMAGE"])
	}
	if !strings.HasPrefix(v["KUBECTL_VERSION"], m[1]+".") {
		t.Errorf("kubectl %s and node image %s differ in minor version", v["KUBECTL_VERSION"], m[1])
	}
	if !regexp.MustCompile(`^[a-z0-9./-]+:v\d+\.\d+\.\d+-thick$`).MatchString(v["MULTUS_IMAGE"]) {
		t.Errorf("MULTUS_IMAGE=%q: want a released thick-plugin tag", v["MULTUS_IMAGE"])
	}
}

// The kind overlay installs the Multus thick plugin of versions.env, so the
// image the scripts pull and load is the one the nodes run.
func TestOverlayRunsThePinnedMultusThick(t *testing.T) {
	want := versions(t)["MULTUS_IMAGE"]
	objs := k8stest.Render(t, filepath.Join(k8stest.RepoRoot(t), "deploy", "overlays", "kind"))
	var images []string
	var shim, daemon bool
	for _, o := range objs {
		if o.GetKind() != "DaemonSet" || o.GetName() != "kube-multus-ds" {
			continue
		}
		for _, field := range []string{"initContainers", "containers"} {
			for _, c := range nestedSlice(o.Object, "spec", "template", "spec", field) {
				cm, _ := c.(map[string]any)
				img, _ := cm["image"].(string)
				images = append(images, img)
				cmd, _ := cm["command"].([]any)
				for _, a := range cmd {
					s, _ := a.(string)
					shim = shim || s == "thick"
					daemon = daemon || strings.HasSuffix(s, "/multus-daemon")
				}
			}
		}
	}
	if len(images) == 0 {
		t.Fatal("deploy/overlays/kind has no DaemonSet kube-multus-ds with containers")
	}
	for _, img := range images {
		if img != want {
			t.Errorf("kube-multus-ds runs %s, versions.env pins %s", img, want)
		}
	}
	if !shim || !daemon {
		t.Errorf("kube-multus-ds does not install the thick shim (%v) and run multus-daemon (%v)", shim, daemon)
	}
}

func nestedSlice(obj map[string]any, path ...string) []any {
	var cur any = obj
	for _, p := range path {
		m, _ := cur.(map[string]any)
		cur = m[p]
	}
	s, _ := cur.([]any)
	return s
}

// The workflow parses, runs make e2e-kind on ubuntu-latest and keeps the
// artifacts of a failed run.
func TestWorkflow(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(k8stest.RepoRoot(t), ".github", "workflows", "e2e-kind.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		On   map[string]any `json:"on"`
		Jobs map[string]struct {
			RunsOn         string `json:"runs-on"`
			TimeoutMinutes int    `json:"timeout-minutes"`
			Steps          []struct {
				Uses string         `json:"uses"`
				Run  string         `json:"run"`
				If   string         `json:"if"`
				With map[string]any `json:"with"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	// "on" is quoted in the file: YAML 1.1 would read a bare on as true.
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatalf("e2e-kind.yml: %v", err)
	}
	if len(wf.On) == 0 || len(wf.Jobs) != 1 {
		t.Fatalf("want triggers and one job, got on=%v jobs=%d", wf.On, len(wf.Jobs))
	}
	for name, job := range wf.Jobs {
		if job.RunsOn != "ubuntu-latest" {
			t.Errorf("job %s runs on %q, want ubuntu-latest", name, job.RunsOn)
		}
		if job.TimeoutMinutes == 0 {
			t.Errorf("job %s has no timeout-minutes", name)
		}
		var runs, uploads bool
		for _, s := range job.Steps {
			runs = runs || strings.Contains(s.Run, "make e2e-kind")
			uploads = uploads || (strings.HasPrefix(s.Uses, "actions/upload-artifact@") && strings.Contains(s.If, "failure()"))
		}
		if !runs || !uploads {
			t.Errorf("job %s: runs make e2e-kind %v, uploads artifacts on failure %v", name, runs, uploads)
		}
	}
}

// The scripts parse, and the Makefile target runs hack/kind/e2e.sh.
func TestScripts(t *testing.T) {
	root := k8stest.RepoRoot(t)
	scripts, err := filepath.Glob(filepath.Join(root, "hack", "kind", "*.sh"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no hack/kind/*.sh: %v", err)
	}
	for _, s := range scripts {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^e2e-kind:.*## .*\n\thack/kind/e2e\.sh`).Match(mk) {
		t.Error("Makefile: no e2e-kind target (with a help line) that runs hack/kind/e2e.sh")
	}
}
