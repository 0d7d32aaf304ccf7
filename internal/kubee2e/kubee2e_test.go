package kubee2e

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestFlowsAsksForEveryRow(t *testing.T) {
	matched := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/flows" || r.URL.Query().Get("limit") != "100000" || r.URL.Query().Get("iface") != "net1" {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusBadRequest)
			return
		}
		w.Write([]byte(`{"flows": [{"interface": "net1", "proto": "udp"}], "matched": ` + strconv.Itoa(matched) + `}`))
	}))
	defer srv.Close()
	rows, err := Flows(srv.URL, url.Values{"iface": {"net1"}})
	if err != nil || len(rows) != 1 || rows[0].Interface != "net1" || rows[0].Proto != "udp" {
		t.Fatalf("Flows = %+v, %v; want the one net1 row", rows, err)
	}
	matched = 2
	if _, err := Flows(srv.URL, url.Values{"iface": {"net1"}}); err == nil {
		t.Error("a response cut short by the limit is no error")
	}
}

func TestNetworkStatus(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		nadv1.NetworkStatusAnnot: `[{"name": "default/macvlan", "interface": "net1", "ips": ["198.18.0.5"]}]`}}}
	s, err := NetworkStatus(p)
	if err != nil || len(s) != 1 || s[0].Interface != "net1" || s[0].IPs[0] != "198.18.0.5" {
		t.Fatalf("NetworkStatus = %+v, %v", s, err)
	}
	if _, err := NetworkStatus(&corev1.Pod{}); err == nil {
		t.Error("a pod without a network status gave no error")
	}
}

func TestDeletePod(t *testing.T) {
	kube := fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}})
	if err := DeletePod(kube, "ns", "p", time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Pods("ns").Get(context.Background(), "p", metav1.GetOptions{}); err == nil {
		t.Error("the pod is still there")
	}
	if err := DeletePod(kube, "ns", "p", time.Second); err != nil {
		t.Errorf("deleting a pod that is gone: %v", err)
	}
}

// TestCallerTokenOverTLS: Caller sends its token, over TLS checked against the
// CA file for the name given; without the CA the request fails.
func TestCallerTokenOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "who?", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"flows": [], "matched": 0}`))
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := TLSClient(caFile, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := (Caller{Client: client}).Status(srv.URL); err != nil || code != http.StatusUnauthorized {
		t.Errorf("without a token: %d, %v; want 401", code, err)
	}
	if _, err := (Caller{Client: client, Token: "s3cret"}).Flows(srv.URL, url.Values{}); err != nil {
		t.Errorf("with the token: %v", err)
	}
	if _, err := (Caller{Token: "s3cret"}).Flows(srv.URL, url.Values{}); err == nil {
		t.Error("a server whose certificate the client cannot check was accepted")
	} else if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the token: %v", err)
	}
	wrongName, err := TLSClient(caFile, "nsint-agent.nsint.svc")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := (Caller{Client: wrongName}).Status(srv.URL); err == nil {
		t.Error("a certificate for another name was accepted")
	}
}
