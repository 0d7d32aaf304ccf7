package deploy

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/nsint/nsint/pkg/collector"
	"github.com/nsint/nsint/pkg/config"
)

// expand replaces the $(VAR) references the kubelet expands in args and
// env values with the values of env (fieldRefs: a stand-in address).
func expand(s string, env []corev1.EnvVar) string {
	for _, e := range env {
		v := e.Value
		if e.ValueFrom != nil {
			v = "198.18.0.1"
		}
		s = strings.ReplaceAll(s, "$("+e.Name+")", v)
	}
	return s
}

// TestFlagsParse parses the agent's and the collector's arguments, the
// agent's environment and its agent.yaml with the binaries' own parsers, in
// every overlay: the security flags are real, valid together, and say what
// the manifests mean (HTTPS with the mounted files, Kubernetes auth).
func TestFlagsParse(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			var ds appsv1.DaemonSet
			find(t, objs, "DaemonSet", "nsint-agent", &ds)
			var cm corev1.ConfigMap
			find(t, objs, "ConfigMap", "nsint-agent", &cm)
			file := filepath.Join(t.TempDir(), "agent.yaml")
			if err := os.WriteFile(file, []byte(cm.Data["agent.yaml"]), 0o600); err != nil {
				t.Fatal(err)
			}
			c := ds.Spec.Template.Spec.Containers[0]
			var args []string
			for _, a := range c.Args {
				if strings.HasPrefix(a, "--config=") {
					a = "--config=" + file
				}
				args = append(args, expand(a, c.Env))
			}
			environ := []string{"KUBERNETES_SERVICE_HOST=198.18.0.2"}
			for _, e := range c.Env {
				if e.ValueFrom != nil {
					environ = append(environ, e.Name+"=198.18.0.1")
				} else {
					environ = append(environ, e.Name+"="+expand(e.Value, c.Env))
				}
			}
			agent, err := config.Parse(args, environ, io.Discard)
			if err != nil {
				t.Fatalf("agent arguments %v: %v", args, err)
			}
			if agent.APIAuth != config.APIAuthKubernetes || agent.APITLSCert != "/etc/nsint-tls/tls.crt" || agent.APITLSKey != "/etc/nsint-tls/tls.key" {
				t.Errorf("agent: auth %q cert %q key %q", agent.APIAuth, agent.APITLSCert, agent.APITLSKey)
			}

			var dep appsv1.Deployment
			find(t, objs, "Deployment", "nsint-collector", &dep)
			cc := dep.Spec.Template.Spec.Containers[0]
			cfg := collector.DefaultConfig()
			fs := flag.NewFlagSet("nsint-collector", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg.RegisterFlags(fs)
			var cargs []string
			for _, a := range cc.Args {
				cargs = append(cargs, expand(a, cc.Env))
			}
			if err := fs.Parse(cargs); err != nil || fs.NArg() != 0 {
				t.Fatalf("collector arguments %v: %v (left %v)", cargs, err, fs.Args())
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("collector arguments %v: %v", cargs, err)
			}
			if cfg.APIAuth != collector.APIAuthKubernetes || cfg.AgentTLSCA == "" || cfg.AgentTokenFile == "" {
				t.Errorf("collector: auth %q agent CA %q token %q", cfg.APIAuth, cfg.AgentTLSCA, cfg.AgentTokenFile)
			}
		})
	}
}
