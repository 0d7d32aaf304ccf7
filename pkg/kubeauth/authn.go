package kubeauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ErrUnauthenticated is the error of a request without a token, or with one
// TokenReview rejects.
var ErrUnauthenticated = errors.New("unauthenticated")

// Authenticator authenticates bearer tokens with TokenReview.
type Authenticator struct {
	kube      kubernetes.Interface
	audiences []string
	cache     *ttlCache[authnResult]
}

type authnResult struct {
	user User
	ok   bool
}

// NewAuthenticator returns an Authenticator asking kube and reusing each
// answer (accepted or rejected) for ttl. audiences, when given, are the
// audiences a token must be meant for (nil: the API server's own).
func NewAuthenticator(kube kubernetes.Interface, ttl time.Duration, audiences ...string) *Authenticator {
	return &Authenticator{kube: kube, audiences: audiences, cache: newCache[authnResult](ttl)}
}

// Authenticate returns the user token belongs to. It returns an error
// wrapping ErrUnauthenticated when the token is empty or rejected, and
// another error when the API server could not answer. The error never
// contains the token.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (User, error) {
	if token == "" {
		return User{}, fmt.Errorf("no bearer token: %w", ErrUnauthenticated)
	}
	k := hashOf("authn", token)
	if r, ok := a.cache.get(k); ok {
		if !r.ok {
			return User{}, fmt.Errorf("token rejected by TokenReview: %w", ErrUnauthenticated)
		}
		return r.user, nil
	}
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: a.audiences}}
	res, err := a.kube.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		return User{}, fmt.Errorf("TokenReview: %w", err)
	}
	st := res.Status
	if !st.Authenticated {
		a.cache.put(k, authnResult{})
		return User{}, fmt.Errorf("token rejected by TokenReview: %w", ErrUnauthenticated)
	}
	u := User{Name: st.User.Username, UID: st.User.UID, Groups: st.User.Groups}
	if len(st.User.Extra) > 0 {
		u.Extra = make(map[string][]string, len(st.User.Extra))
		for k, v := range st.User.Extra {
			u.Extra[k] = v
		}
	}
	a.cache.put(k, authnResult{user: u, ok: true})
	return u, nil
}
