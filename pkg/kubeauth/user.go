package kubeauth

import (
	"context"
	"slices"
)

// User is an authenticated caller, as TokenReview describes it.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

type userKey struct{}

// WithUser returns ctx carrying u.
func WithUser(ctx context.Context, u User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the user Gate authenticated for the request of ctx, and
// false when there is none (an open path, or authentication off).
func UserFrom(ctx context.Context) (User, bool) {
	u, ok := ctx.Value(userKey{}).(User)
	return u, ok
}

// key is what identifies the user in cache keys: name, UID, groups and extra
// in a stable order.
func (u User) key() string {
	b := []byte(u.Name + "\x00" + u.UID + "\x00")
	for _, g := range u.Groups {
		b = append(b, g...)
		b = append(b, 0)
	}
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = append(b, 1)
		b = append(b, k...)
		for _, v := range u.Extra[k] {
			b = append(b, 0)
			b = append(b, v...)
		}
	}
	return string(b)
}
