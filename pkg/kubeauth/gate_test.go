package kubeauth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/nsint/nsint/pkg/kubeauth"
)

// Requests without a usable bearer token are refused with 401 before any
// review is asked (the API server here does not exist: asking would be a
// 503); open paths are served without one.
func TestGateWithoutToken(t *testing.T) {
	kube, err := kubernetes.NewForConfig(&restConfigNowhere)
	if err != nil {
		t.Fatal(err)
	}
	gate := &kubeauth.Gate{
		Authn: kubeauth.NewAuthenticator(kube, time.Minute),
		Authz: kubeauth.NewAuthorizer(kube, time.Minute),
		Needs: func(r *http.Request) kubeauth.Need {
			if r.URL.Path == "/healthz" {
				return kubeauth.Open()
			}
			return kubeauth.GetPath(r)
		},
	}
	h := gate.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := kubeauth.UserFrom(r.Context()); ok {
			t.Errorf("%s: a user on an open path", r.URL.Path)
		}
	}))
	for _, c := range []struct {
		path, header, value string
		want                int
	}{
		{"/metrics", "", "", http.StatusUnauthorized},
		{"/metrics", "Authorization", "Basic dXNlcjpwYXNz", http.StatusUnauthorized},
		{"/metrics", "Authorization", "Bearer ", http.StatusUnauthorized},
		{"/metrics", "Authorization", "Bearer", http.StatusUnauthorized},
		{"/metrics", kubeauth.ForwardedTokenHeader, "some-token", http.StatusUnauthorized}, // not accepted unless asked for
		{"/healthz", "", "", http.StatusOK},
		{"/healthz", "Authorization", "Basic dXNlcjpwYXNz", http.StatusOK},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, c.path, nil)
		if c.header != "" {
			req.Header.Set(c.header, c.value)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s with %s %q: %d, want %d", c.path, c.header, c.value, rec.Code, c.want)
		}
		if c.want == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s with %s %q: 401 without WWW-Authenticate", c.path, c.header, c.value)
		}
	}
	if d := gate.Denied(); d[401] != 5 || d[503] != 0 {
		t.Errorf("denied = %v, want 401:5 and no review asked", d)
	}
}
