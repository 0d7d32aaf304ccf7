package access

import (
	"context"
	"testing"
)

func TestFromContext(t *testing.T) {
	if s := FromContext(context.Background()); !IsAll(s) {
		t.Fatalf("no scope set: got %T, want All", s)
	}
	s := Namespaces(false, "a")
	got := FromContext(WithScope(context.Background(), s))
	if !got.Namespace("a") || got.Namespace("b") || got.Nodes() {
		t.Fatalf("stored scope not returned: a=%v b=%v nodes=%v", got.Namespace("a"), got.Namespace("b"), got.Nodes())
	}
	if IsAll(got) {
		t.Fatal("Namespaces scope reported as All")
	}
	n := FromContext(WithScope(context.Background(), nil))
	if n.Namespace("a") || n.Nodes() {
		t.Fatal("nil scope widened; want None")
	}
}

func TestNamespaces(t *testing.T) {
	s := Namespaces(true, "a", "b")
	for ns, want := range map[string]bool{"a": true, "b": true, "c": false, "": false} {
		if got := s.Namespace(ns); got != want {
			t.Errorf("Namespace(%q) = %v, want %v", ns, got, want)
		}
	}
	if !s.Nodes() {
		t.Error("Nodes() = false, want true")
	}
}
