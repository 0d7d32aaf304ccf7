package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/flagconf"
)

func TestDefaults(t *testing.T) {
	a, err := Parse([]string{"--node-name", "n1"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a.ReportFormat != "v2.0" || a.APIAddr != ":4048" || a.AttachMode != "auto" || !a.HostNetns ||
		a.ReportInterval != time.Second || a.SnapLen != 128 || len(a.NetnsDirs) != 1 || a.NetnsDirs[0] != "/var/run/netns" {
		t.Fatalf("unexpected defaults: %+v", a)
	}
	if a.SwitchIDSource != "hash of node name n1" {
		t.Fatalf("switch id source %q", a.SwitchIDSource)
	}
	if a.CollectorReplicas != "" || a.CollectorRefresh != 30*time.Second || len(a.Collectors) != 0 {
		t.Fatalf("collector defaults: %v, replicas %q every %v; want none, every 30s", a.Collectors, a.CollectorReplicas, a.CollectorRefresh)
	}
}

// A replicated collector's name gets the default port, like --collector.
func TestCollectorReplicas(t *testing.T) {
	a, err := Parse([]string{"--node-name", "n1", "--collector-replicas", "nsint-collector-replicas.nsint.svc",
		"--collector-refresh", "10s"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a.CollectorReplicas != "nsint-collector-replicas.nsint.svc:32766" || a.CollectorRefresh != 10*time.Second {
		t.Fatalf("replicas %q every %v", a.CollectorReplicas, a.CollectorRefresh)
	}
}

func TestEnvAndFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(file, []byte("report-format: v0.5\nnetns-dir: [/a, /b]\nhost-netns: false\nswitch-id: 198.18.0.9\n"), 0o644)
	env := []string{"NSINT_COLLECTOR=coll.example,[fd00::5]:9000", "NSINT_NODE_NAME=n2"}
	a, err := Parse([]string{"--config", file}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a.ReportFormat != "v0.5" || a.HostNetns || strings.Join(a.NetnsDirs, ",") != "/a,/b" || a.NodeName != "n2" {
		t.Fatalf("file/env not applied: %+v", a)
	}
	if got := strings.Join(a.Collectors, ","); got != "coll.example:32766,[fd00::5]:9000" {
		t.Fatalf("collectors = %s", got)
	}
	if a.SwitchID != 198<<24|18<<16|9 {
		t.Fatalf("switch id %d", a.SwitchID)
	}
}

func TestSwitchIDFromNodeIP(t *testing.T) {
	a, err := Parse([]string{"--node-name", "x", "--node-ip", "198.18.1.2"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a.SwitchID != 198<<24|18<<16|1<<8|2 {
		t.Fatalf("switch id %d", a.SwitchID)
	}
}

func TestInvalidValuesNameFieldAndValue(t *testing.T) {
	cases := []struct {
		args  []string
		field string
		value string
	}{
		{[]string{"--report-format", "v1.0"}, "report-format", "v1.0"},
		{[]string{"--attach-mode", "xdp"}, "attach-mode", "xdp"},
		{[]string{"--tail-call", "patched"}, "tail-call", "patched"},
		{[]string{"--switch-id", "fd00::1"}, "switch-id", "fd00::1"},
		{[]string{"--collector", "host:99999"}, "collector", "host:99999"},
		{[]string{"--collector-replicas", "collectors.nsint.svc:0"}, "collector-replicas", "collectors.nsint.svc:0"},
		{[]string{"--collector-refresh", "100ms"}, "collector-refresh", "100ms"},
		{[]string{"--snaplen", "9000"}, "snaplen", "9000"},
		{[]string{"--log-level", "loud"}, "log-level", "loud"},
		{[]string{"--max-ports", "70000"}, "max-ports", "70000"},
		{[]string{"--tc-handle", "zero"}, "tc-handle", "zero"},
		{[]string{"--tc-priority", "50593"}, "tc-priority", "50593"},
		{[]string{"--tc-priority", "0"}, "tc-priority", "0"},
		{[]string{"--host-netns=false", "--netns-dir", ""}, "netns-dir", ""},
	}
	for _, c := range cases {
		_, err := Parse(append([]string{"--node-name", "n"}, c.args...), nil, io.Discard)
		e, ok := flagconf.FlagErrorValue(err)
		if !ok {
			t.Errorf("%v: err = %v, want a field error", c.args, err)
			continue
		}
		if e.Field != c.field || e.Value != c.value {
			t.Errorf("%v: error names %s=%q, want %s=%q (%v)", c.args, e.Field, e.Value, c.field, c.value, err)
		}
		if !strings.Contains(err.Error(), c.field) {
			t.Errorf("%v: message %q does not name the field", c.args, err)
		}
	}
}

func TestSelectParsedWithDefault(t *testing.T) {
	a, err := Parse([]string{"--node-name", "n"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Select) != 1 || a.Select[0].String() != DefaultSelect {
		t.Errorf("default selection %v, want [%s]", a.Select, DefaultSelect)
	}
	a, err = Parse([]string{"--node-name", "n", "--select", "include name=net*", "--select", "exclude netns=host"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Select) != 2 || a.Select[0].Name != "net*" || !a.Select[1].Exclude || a.Select[1].Netns != "host" {
		t.Errorf("selection %+v", a.Select)
	}
}

// --api-auth: auto follows Kubernetes; kubernetes (also as auto's
// resolution) without a certificate and key is an error naming the flag;
// a certificate without its key, or the reverse, is one too.
func TestAPIAuth(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, c := range []struct {
		args    []string
		want    APIAuth
		wantErr string
	}{
		{[]string{"--kubernetes", "off"}, APIAuthNone, ""},
		{[]string{"--kubernetes", "off", "--api-auth", "kubernetes", "--api-tls-cert", "c", "--api-tls-key", "k"}, APIAuthKubernetes, ""},
		{[]string{"--kubernetes", "on", "--api-tls-cert", "c", "--api-tls-key", "k"}, APIAuthKubernetes, ""},
		{[]string{"--kubeconfig", "kc", "--api-auth", "none"}, APIAuthNone, ""},
		{[]string{"--kubernetes", "off", "--api-tls-cert", "c", "--api-tls-key", "k"}, APIAuthNone, ""},
		{[]string{"--api-auth", "kubernetes"}, "", `invalid api-tls-cert "" (from configuration): --api-auth kubernetes needs --api-tls-cert`},
		{[]string{"--kubernetes", "on"}, "", `invalid api-tls-cert "" (from configuration): Kubernetes is on`},
		{[]string{"--api-auth", "kubernetes", "--api-tls-cert", "c"}, "", `invalid api-tls-key ""`},
		{[]string{"--api-tls-key", "k"}, "", `invalid api-tls-cert ""`},
		{[]string{"--api-auth", "token"}, "", `invalid api-auth "token"`},
		{[]string{"--api-auth-cache-ttl", "-1s"}, "", `invalid api-auth-cache-ttl "-1s"`},
	} {
		a, err := Parse(append([]string{"--node-name", "n1"}, c.args...), nil, io.Discard)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%v: error %v, want one containing %s", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if a.APIAuth != c.want {
			t.Errorf("%v: api auth %s, want %s", c.args, a.APIAuth, c.want)
		}
	}
	a, err := Parse([]string{"--node-name", "n1"}, []string{"NSINT_API_AUTH_CACHE_TTL=5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a.APIAuthCacheTTL != 5*time.Second || a.APIAuthFrom != "auto" {
		t.Errorf("ttl %v from %s", a.APIAuthCacheTTL, a.APIAuthFrom)
	}
}
