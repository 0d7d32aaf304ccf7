package client

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsint/nsint/pkg/collector/web"
)

// tlsCollector serves /api/v1/flows over https and answers 401 unless the
// request carries Authorization: Bearer want. It returns the server and its
// CA as a PEM file.
func tlsCollector(t *testing.T, want string) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+want {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"flows":[],"matched":0}`))
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ca
}

func TestTokenAndCA(t *testing.T) {
	const token = "sha256~secret-token"
	srv, ca := tlsCollector(t, token)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	caPEM, _ := os.ReadFile(ca)
	kubeconfig := func(name, user string) string {
		p := filepath.Join(dir, name)
		// The cluster's server is not the collector: only its CA and the
		// user's token are used.
		os.WriteFile(p, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://198.18.0.1:6443
    certificate-authority-data: %s
users:
- name: u
  user:
%s
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`, base64.StdEncoding.EncodeToString(caPEM), user)), 0o600)
		return p
	}
	withToken := kubeconfig("kc", "    token: "+token)
	withoutToken := kubeconfig("kc-none", "    username: someone")
	for _, tc := range []struct {
		name string
		o    FlowsOptions
		want string // "" ok, else a substring of the error
	}{
		{"token and ca-file", FlowsOptions{Token: token, CAFile: ca}, ""},
		{"token file", FlowsOptions{Token: "@" + tokenFile, CAFile: ca}, ""},
		{"kubeconfig", FlowsOptions{Kubeconfig: withToken}, ""},
		{"kubeconfig with another token", FlowsOptions{Kubeconfig: withToken, Token: "other"}, "401"},
		{"no token", FlowsOptions{CAFile: ca}, "401"},
		{"wrong token", FlowsOptions{Token: "nope", CAFile: ca}, "401"},
		{"no CA", FlowsOptions{Token: token}, "certificate"},
		{"kubeconfig without token", FlowsOptions{Kubeconfig: withoutToken}, "--kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Server = srv.URL
			hc, err := tc.o.HTTPClient()
			if err == nil {
				var resp *web.FlowsResponse
				resp, err = Flows(context.Background(), hc, srv.URL, nil)
				if err == nil && resp.Flows == nil {
					t.Error("no flows in the answer")
				}
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), token) {
				t.Errorf("the error shows the token: %v", err)
			}
			var fe *FlagError
			if tc.want == "--kubeconfig" && !errors.As(err, &fe) {
				t.Errorf("error %T, want *FlagError", err)
			}
		})
	}
}
