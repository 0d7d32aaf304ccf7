package kubeauth_test

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"testing"

	"github.com/nsint/nsint/pkg/kubeauth"
	"time"

	"k8s.io/client-go/rest"
)

// restConfigNowhere points at a loopback port nothing listens on.
var restConfigNowhere = rest.Config{Host: "https://127.0.0.1:1", Timeout: 2 * time.Second}

// serveTLS serves h over TLS from cf on loopback until the test ends and
// returns the base URL. (httptest's StartTLS would add a certificate of its
// own, which a client without SNI gets instead of cf's.)
func serveTLS(t *testing.T, cf *kubeauth.CertFiles, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(tls.NewListener(ln, cf.TLSConfig()))
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}
