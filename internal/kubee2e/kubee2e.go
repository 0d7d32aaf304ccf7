// Package kubee2e holds what the two end-to-end suites against a live
// Kubernetes cluster share — the local node's (e2e/cluster) and kind's
// (e2e/kind): retrying until a condition holds, a test namespace removed at
// the end, deleting a pod and waiting until it is gone, a pod's Multus network
// status, and the collector's JSON API (over TLS with a bearer token where the
// cluster wants them: Caller). It creates only what a test asks for
// and never touches a cluster by itself.
package kubee2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/web"
)

// Eventually calls f every half second until it returns nil, and fails the
// test with f's last error once timeout has passed.
func Eventually(tb testing.TB, timeout time.Duration, what string, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// GetJSON decodes the body of GET u into into; a status other than 200 is an
// error.
func GetJSON(u string, into any) error { return Caller{}.GetJSON(u, into) }

// Flows returns every row of the collector's GET /api/v1/flows with query
// (collector is its base URL); a response cut short by the limit is an error.
func Flows(collector string, query url.Values) ([]flowtable.Row, error) {
	return Caller{}.Flows(collector, query)
}

// Caller asks an API that may want TLS and a bearer token: Client carries
// the TLS settings (nil: plain defaults), Token is sent as
// "Authorization: Bearer" (empty: no header). Errors never contain the token.
type Caller struct {
	Client *http.Client
	Token  string
}

// TLSClient returns a client that checks servers' certificates against the
// CA bundle in caFile, for the name serverName (empty: the URL's host).
func TLSClient(caFile, serverName string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// Get sends GET u; the caller closes the body.
func (c Caller) Get(u string) (*http.Response, error) {
	client := c.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return client.Do(req)
}

// Status returns the status code of GET u and its body.
func (c Caller) Status(u string) (int, string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, string(body), err
}

// GetJSON decodes the body of GET u into into; a status other than 200 is an
// error.
func (c Caller) GetJSON(u string, into any) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("GET %s: decode: %w", u, err)
	}
	return nil
}

// Flows returns every row of the collector's GET /api/v1/flows with query
// (collector is its base URL); a response cut short by the limit is an error.
func (c Caller) Flows(collector string, query url.Values) ([]flowtable.Row, error) {
	query.Set("limit", "100000")
	var resp web.FlowsResponse
	if err := c.GetJSON(collector+"/api/v1/flows?"+query.Encode(), &resp); err != nil {
		return nil, err
	}
	if resp.Matched > len(resp.Flows) {
		return nil, fmt.Errorf("%d rows matched, %d returned", resp.Matched, len(resp.Flows))
	}
	return resp.Flows, nil
}

// Namespace creates the namespace name, deleted when the test ends, and
// waits until its default ServiceAccount exists (pods are refused before).
func Namespace(tb testing.TB, kube kubernetes.Interface, name string) string {
	tb.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := kube.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("create namespace %s: %v", name, err)
	}
	tb.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	Eventually(tb, time.Minute, "default ServiceAccount of "+name, func() error {
		_, err := kube.CoreV1().ServiceAccounts(name).Get(context.Background(), "default", metav1.GetOptions{})
		return err
	})
	return name
}

// DeletePod deletes a pod without a grace period and waits until the API
// server no longer has it. A pod that is already gone is no error.
func DeletePod(kube kubernetes.Interface, namespace, name string, timeout time.Duration) error {
	zero := int64(0)
	pods := kube.CoreV1().Pods(namespace)
	err := pods.Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete pod %s/%s: %w", namespace, name, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		_, err := pods.Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("still there")
			}
			return fmt.Errorf("pod %s/%s not gone within %s: %w", namespace, name, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// NetworkStatus returns the network status Multus wrote on p.
func NetworkStatus(p *corev1.Pod) ([]nadv1.NetworkStatus, error) {
	raw := p.Annotations[nadv1.NetworkStatusAnnot]
	if raw == "" {
		return nil, fmt.Errorf("no %s annotation yet", nadv1.NetworkStatusAnnot)
	}
	var statuses []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(raw), &statuses); err != nil {
		return nil, fmt.Errorf("network status %q: %w", raw, err)
	}
	return statuses, nil
}
