package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	vns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netns"
)

// RequireRoot skips the test, saying why, when it does not run as root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: needs root (network namespaces, eBPF); CI runs as root")
	}
}

// Prefix returns a short unique prefix ("nt" + 6 hex digits) for the names of
// namespaces and interfaces a test creates. Interface names stay within the
// kernel's 15-byte limit when the suffix is at most 7 bytes.
func Prefix(tb testing.TB) string {
	tb.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("random prefix: %v", err)
	}
	return "nt" + hex.EncodeToString(b[:])
}

// NS is a network namespace bound to a file, as `ip netns add` makes one.
type NS struct {
	Name  string // file name inside Dir
	Dir   string // directory holding the file
	Path  string // Dir/Name
	Inode uint64 // nsfs inode: the namespace's identity
}

// Dir returns a fresh temporary directory suitable as a netns directory.
func Dir(tb testing.TB) string {
	tb.Helper()
	return tb.TempDir()
}

// New creates a network namespace bound at dir/name, with loopback up, and
// registers its removal. name should start with a Prefix.
func New(tb testing.TB, dir, name string) *NS {
	tb.Helper()
	ns, err := Create(dir, name)
	if err != nil {
		tb.Fatalf("create netns %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if err := ns.Remove(); err != nil {
			tb.Errorf("remove netns %s: %v", ns.Path, err)
		}
	})
	return ns
}

// Create creates a network namespace bound at dir/name with loopback up. It is
// New without a test, for benchmarks and harnesses that manage lifetimes
// themselves; the caller must call Remove.
func Create(dir, name string) (*NS, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mkdir %s: %w", dir, err)
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("create mount point: %w", err)
	}
	f.Close()

	err = netns.DoNew(func() error {
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", path, err)
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
		return nil
	})
	if err != nil {
		// A namespace already bound stays until Remove: never leave a mount behind.
		ns := &NS{Name: name, Dir: dir, Path: path}
		return nil, errors.Join(err, ns.Remove())
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	return &NS{Name: name, Dir: dir, Path: path, Inode: st.Ino}, nil
}

// Remove unmounts and deletes the namespace file; the kernel destroys the
// namespace and its interfaces once nothing else holds it.
func (ns *NS) Remove() error {
	err := unix.Unmount(ns.Path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", ns.Path, err)
	}
	if err := os.Remove(ns.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", ns.Path, err)
	}
	return nil
}

// Handle opens a netlink handle inside the namespace. The caller closes it.
func (ns *NS) Handle() (*netlink.Handle, error) {
	h, err := vns.GetFromPath(ns.Path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", ns.Path, err)
	}
	defer h.Close()
	return netlink.NewHandleAt(h)
}

// NetlinkHandle is Handle for tests: it fails the test on error and closes the
// handle at cleanup.
func (ns *NS) NetlinkHandle(tb testing.TB) *netlink.Handle {
	tb.Helper()
	h, err := ns.Handle()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	return h
}

// Do runs fn on a locked OS thread switched into the namespace.
func (ns *NS) Do(fn func() error) error {
	target, err := netns.Open(ns.Path)
	if err != nil {
		return err
	}
	defer target.Close()
	return target.Do(fn)
}

// Command returns an exec.Cmd that runs argv inside the namespace (nsenter).
func (ns *NS) Command(argv ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + ns.Path, "--"}, argv...)...)
}

// Run runs argv inside the namespace and fails the test when it fails.
func (ns *NS) Run(tb testing.TB, argv ...string) string {
	tb.Helper()
	out, err := ns.Command(argv...).CombinedOutput()
	if err != nil {
		tb.Fatalf("in netns %s: %s: %v\n%s", ns.Name, strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// Veth creates a veth pair with one end (nameA) in a and the other (nameB) in
// b, both up. A nil namespace means the test's own (the host) namespace, in
// which case the pair is removed at cleanup. Names must be unique on the host
// while the pair is created there; both ends are created in the host and moved.
func Veth(tb testing.TB, a *NS, nameA string, b *NS, nameB string) {
	tb.Helper()
	tmpA, tmpB := nameA, nameB
	if a != nil {
		tmpA = Prefix(tb) + "a"
	}
	if b != nil {
		tmpB = Prefix(tb) + "b"
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tmpA}, PeerName: tmpB}
	if err := netlink.LinkAdd(veth); err != nil {
		tb.Fatalf("add veth %s/%s: %v", tmpA, tmpB, err)
	}
	if a == nil || b == nil {
		hostEnd := tmpA
		if a != nil {
			hostEnd = tmpB
		}
		tb.Cleanup(func() {
			if l, err := netlink.LinkByName(hostEnd); err == nil {
				netlink.LinkDel(l)
			}
		})
	}
	MoveLink(tb, tmpA, a, nameA)
	MoveLink(tb, tmpB, b, nameB)
}

// MoveLink moves the host interface cur into ns (nil: stays in the host),
// renames it to name and sets it up.
func MoveLink(tb testing.TB, cur string, ns *NS, name string) {
	tb.Helper()
	l, err := netlink.LinkByName(cur)
	if err != nil {
		tb.Fatalf("find %s: %v", cur, err)
	}
	if ns == nil {
		if err := netlink.LinkSetUp(l); err != nil {
			tb.Fatalf("set %s up: %v", cur, err)
		}
		return
	}
	fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("open %s: %v", ns.Path, err)
	}
	defer unix.Close(fd)
	if err := netlink.LinkSetNsFd(l, fd); err != nil {
		tb.Fatalf("move %s into %s: %v", cur, ns.Name, err)
	}
	h := ns.NetlinkHandle(tb)
	l, err = h.LinkByName(cur)
	if err != nil {
		tb.Fatalf("find %s in %s: %v", cur, ns.Name, err)
	}
	if cur != name {
		if err := h.LinkSetName(l, name); err != nil {
			tb.Fatalf("rename %s to %s in %s: %v", cur, name, ns.Name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		tb.Fatalf("set %s up in %s: %v", name, ns.Name, err)
	}
}

// Macvlan creates a bridge-mode macvlan on the host interface parent, moves it
// into ns and names it name there (the stand-in for an SR-IOV VF as `net1`).
func Macvlan(tb testing.TB, parent string, ns *NS, name string) {
	tb.Helper()
	p, err := netlink.LinkByName(parent)
	if err != nil {
		tb.Fatalf("find macvlan parent %s: %v", parent, err)
	}
	tmp := Prefix(tb) + "m"
	mv := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: tmp, ParentIndex: p.Attrs().Index},
		Mode:      netlink.MACVLAN_MODE_BRIDGE,
	}
	if err := netlink.LinkAdd(mv); err != nil {
		tb.Fatalf("add macvlan on %s: %v", parent, err)
	}
	MoveLink(tb, tmp, ns, name)
}

// AddAddr adds an address in CIDR form (198.18.0.1/24, fd00::1/64) to the
// interface name inside ns (nil: the host namespace).
func AddAddr(tb testing.TB, ns *NS, name, cidr string) {
	tb.Helper()
	h := netlink.Handle{}
	hp := &h
	if ns != nil {
		hp = ns.NetlinkHandle(tb)
	}
	l, err := hp.LinkByName(name)
	if err != nil {
		tb.Fatalf("find %s: %v", name, err)
	}
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		tb.Fatalf("parse %s: %v", cidr, err)
	}
	// IPv6 duplicate address detection would delay the address; tests need it now.
	addr.Flags |= unix.IFA_F_NODAD
	if err := hp.AddrAdd(l, addr); err != nil {
		tb.Fatalf("add %s to %s: %v", cidr, name, err)
	}
}
