package netnstest

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNamespaceLifecycle(t *testing.T) {
	RequireRoot(t)
	dir := Dir(t)
	p := Prefix(t)
	a := New(t, dir, p+"-a")
	b := New(t, dir, p+"-b")
	if a.Inode == b.Inode {
		t.Fatalf("two namespaces share inode %d", a.Inode)
	}
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		t.Fatal(err)
	}
	if a.Inode == self.Ino {
		t.Fatal("new namespace is the test's own namespace")
	}
	Veth(t, a, "eth0", b, "eth0")
	AddAddr(t, a, "eth0", "198.18.7.1/24")
	AddAddr(t, b, "eth0", "198.18.7.2/24")
	out := a.Run(t, "ping", "-c1", "-W2", "198.18.7.2")
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping: %s", out)
	}
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.Path); !os.IsNotExist(err) {
		t.Fatalf("namespace file still there: %v", err)
	}
}
