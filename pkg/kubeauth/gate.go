package kubeauth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// ForwardedTokenHeader is where an OAuth proxy in front of a server passes
// the user's access token.
const ForwardedTokenHeader = "X-Forwarded-Access-Token"

// Need is what a request needs to be served: nothing (Open), an
// authenticated user (Attrs nil), or a user allowed Attrs.
type Need struct {
	Open  bool
	Attrs *Attributes
}

// Open is the Need of a request anyone may make.
func Open() Need { return Need{Open: true} }

// Authenticated is the Need of a request any authenticated user may make.
func Authenticated() Need { return Need{} }

// Allowed is the Need of a request a user allowed attrs may make.
func Allowed(attrs Attributes) Need { return Need{Attrs: &attrs} }

// GetPath is the Need of a request a user allowed to get its URL path (a
// non-resource URL) may make.
func GetPath(r *http.Request) Need { return Allowed(Attributes{Verb: "get", Path: r.URL.Path}) }

// Gate serves a request only when its caller has what the request needs.
// Set its fields before the first request; it is then safe for concurrent
// use.
type Gate struct {
	Authn *Authenticator
	Authz *Authorizer
	// Needs says what each request needs.
	Needs func(r *http.Request) Need
	// ForwardedToken also takes the token from X-Forwarded-Access-Token
	// when there is no Authorization header.
	ForwardedToken bool
	// Context, when set, derives the context the handler sees from the
	// authenticated user's (which already carries the user).
	Context func(ctx context.Context, u User) context.Context

	unauthenticated, forbidden, unavailable atomic.Uint64
}

// Wrap returns next behind the gate.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := g.Needs(r)
		if need.Open {
			next.ServeHTTP(w, r)
			return
		}
		token, ok := g.token(r)
		if !ok {
			g.deny(w, http.StatusUnauthorized, "Unauthorized: a bearer token is required")
			return
		}
		u, err := g.Authn.Authenticate(r.Context(), token)
		switch {
		case errors.Is(err, ErrUnauthenticated):
			g.deny(w, http.StatusUnauthorized, "Unauthorized: the bearer token was not accepted")
			return
		case err != nil:
			g.deny(w, http.StatusServiceUnavailable, "authentication unavailable, try again")
			return
		}
		if need.Attrs != nil {
			ok, err := g.Authz.Authorize(r.Context(), u, *need.Attrs)
			if err != nil {
				g.deny(w, http.StatusServiceUnavailable, "authorization unavailable, try again")
				return
			}
			if !ok {
				g.deny(w, http.StatusForbidden, "Forbidden: "+u.Name+" may not "+need.Attrs.String())
				return
			}
		}
		ctx := WithUser(r.Context(), u)
		if g.Context != nil {
			ctx = g.Context(ctx, u)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// token returns the request's bearer token.
func (g *Gate) token(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
	}
	if g.ForwardedToken {
		if tok := strings.TrimSpace(r.Header.Get(ForwardedTokenHeader)); tok != "" {
			return tok, true
		}
	}
	return "", false
}

func (g *Gate) deny(w http.ResponseWriter, code int, msg string) {
	switch code {
	case http.StatusUnauthorized:
		g.unauthenticated.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="nsint"`)
	case http.StatusForbidden:
		g.forbidden.Add(1)
	default:
		g.unavailable.Add(1)
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, msg, code)
}

// Denied returns how many requests the gate answered with each status
// code: 401, 403, and 503 (the API server could not answer).
func (g *Gate) Denied() map[int]uint64 {
	return map[int]uint64{
		http.StatusUnauthorized:       g.unauthenticated.Load(),
		http.StatusForbidden:          g.forbidden.Load(),
		http.StatusServiceUnavailable: g.unavailable.Load(),
	}
}

// Collector exposes Denied as the counter name{code} with help.
func (g *Gate) Collector(name, help string) prometheus.Collector {
	return &deniedCollector{g: g, desc: prometheus.NewDesc(name, help, []string{"code"}, nil)}
}

type deniedCollector struct {
	g    *Gate
	desc *prometheus.Desc
}

func (c *deniedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *deniedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range []struct {
		code string
		n    *atomic.Uint64
	}{{"401", &c.g.unauthenticated}, {"403", &c.g.forbidden}, {"503", &c.g.unavailable}} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(e.n.Load()), e.code)
	}
}
