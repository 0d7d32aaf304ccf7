package kubeauth

import (
	"context"
	"fmt"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Attributes are what a user asks to do: a verb on a non-resource Path
// ("get /metrics"), or, when Path is empty, a verb on a Resource of an API
// Group ("" for the core group), in Namespace ("" for cluster-wide or a
// cluster-scoped resource).
type Attributes struct {
	Verb      string
	Path      string
	Group     string
	Resource  string
	Namespace string
}

func (a Attributes) String() string {
	if a.Path != "" {
		return a.Verb + " " + a.Path
	}
	s := a.Verb + " " + a.Resource
	if a.Group != "" {
		s += "." + a.Group
	}
	if a.Namespace != "" {
		s += " in namespace " + a.Namespace
	}
	return s
}

// Authorizer authorizes users with SubjectAccessReview.
type Authorizer struct {
	kube  kubernetes.Interface
	cache *ttlCache[bool]
}

// NewAuthorizer returns an Authorizer asking kube and reusing each answer
// for ttl.
func NewAuthorizer(kube kubernetes.Interface, ttl time.Duration) *Authorizer {
	return &Authorizer{kube: kube, cache: newCache[bool](ttl)}
}

// Authorize reports whether u may do attrs. An error means the API server
// did not answer; it is not cached.
func (z *Authorizer) Authorize(ctx context.Context, u User, attrs Attributes) (bool, error) {
	k := hashOf("authz", u.key(), attrs.Verb, attrs.Path, attrs.Group, attrs.Resource, attrs.Namespace)
	if ok, hit := z.cache.get(k); hit {
		return ok, nil
	}
	spec := authzv1.SubjectAccessReviewSpec{User: u.Name, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		spec.Extra = make(map[string]authzv1.ExtraValue, len(u.Extra))
		for k, v := range u.Extra {
			spec.Extra[k] = v
		}
	}
	if attrs.Path != "" {
		spec.NonResourceAttributes = &authzv1.NonResourceAttributes{Path: attrs.Path, Verb: attrs.Verb}
	} else {
		spec.ResourceAttributes = &authzv1.ResourceAttributes{Verb: attrs.Verb, Group: attrs.Group,
			Resource: attrs.Resource, Namespace: attrs.Namespace}
	}
	res, err := z.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx,
		&authzv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("SubjectAccessReview %s for %s: %w", attrs, u.Name, err)
	}
	ok := res.Status.Allowed && !res.Status.Denied
	z.cache.put(k, ok)
	return ok, nil
}

// MayGet reports whether u may get the non-resource path (SAR
// nonResourceAttributes {path, verb: get}).
func (z *Authorizer) MayGet(ctx context.Context, u User, path string) (bool, error) {
	return z.Authorize(ctx, u, Attributes{Verb: "get", Path: path})
}

// May reports whether u may verb resource (of the core group when group is
// empty) in namespace ns ("" for cluster-wide or cluster-scoped).
func (z *Authorizer) May(ctx context.Context, u User, verb, group, resource, ns string) (bool, error) {
	return z.Authorize(ctx, u, Attributes{Verb: verb, Group: group, Resource: resource, Namespace: ns})
}
