package kubeauth

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
)

// TokenFileTransport sends the bearer token of a file with each https request,
// re-reading the file when it changed (projected ServiceAccount tokens are
// rotated by the kubelet). When the file cannot be read any more, the last
// token read is sent.
type TokenFileTransport struct {
	path string
	base http.RoundTripper

	mu    sync.Mutex
	st    stamp
	token string
}

// NewTokenFileTransport reads path once (an error names the file, never its
// content) and returns a transport sending its token over base (nil:
// http.DefaultTransport).
func NewTokenFileTransport(path string, base http.RoundTripper) (*TokenFileTransport, error) {
	if base == nil {
		base = http.DefaultTransport
	}
	t := &TokenFileTransport{path: path, base: base}
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *TokenFileTransport) reload() error {
	st, err := stampOf(t.path)
	if err != nil {
		return fmt.Errorf("token file %s: %w", t.path, err)
	}
	if st.same(t.st) {
		return nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("token file %s: %w", t.path, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return fmt.Errorf("token file %s: %w", t.path, errors.New("empty"))
	}
	t.token, t.st = tok, st
	return nil
}

// Token returns the file's current token.
func (t *TokenFileTransport) Token() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	_ = t.reload() // keep the last token when the file is gone or empty
	return t.token
}

// RoundTrip implements http.RoundTripper. The token goes only with https
// requests: a plain-HTTP request is sent without it.
func (t *TokenFileTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		return t.base.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+t.Token())
	return t.base.RoundTrip(r2)
}
