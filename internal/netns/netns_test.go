package netns_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netns"
	"github.com/nsint/nsint/internal/netnstest"
)

// TestOpenRejects checks that files that are not a bound network namespace
// are refused with the matching sentinel and a message naming the path.
func TestOpenRejects(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "not-a-namespace")
	if err := os.WriteFile(regular, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       error
	}{
		{"regular file", regular, netns.ErrNotNsfs},
		{"directory", t.TempDir(), netns.ErrNotNsfs},
		{"missing file", regular + "-missing", os.ErrNotExist},
		{"UTS namespace", "/proc/self/ns/uts", netns.ErrNotNetwork},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, err := netns.Open(tc.path)
			if err == nil {
				ns.Close()
				t.Fatalf("Open(%s) succeeded", tc.path)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("Open(%s) = %v, want an error wrapping %v", tc.path, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name %s", err, tc.path)
			}
		})
	}
}

func TestIsNsfs(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(regular, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{regular: false, "/proc/self/ns/net": true, "/proc/self/ns/uts": true} {
		got, err := netns.IsNsfs(path)
		if err != nil || got != want {
			t.Errorf("IsNsfs(%s) = %v, %v; want %v", path, got, err, want)
		}
	}
	if _, err := netns.IsNsfs(regular + "-missing"); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), regular) {
		t.Errorf("IsNsfs on a missing file: %v", err)
	}
}

// TestOpenBindMount follows what `ip netns add` and container runtimes do:
// the file exists first and is refused until a namespace is bound to it;
// then it opens as that namespace, identified by its inode.
func TestOpenBindMount(t *testing.T) {
	netnstest.RequireRoot(t)
	home := processNetns(t)
	dir := netnstest.Dir(t)
	a := netnstest.New(t, dir, netnstest.Prefix(t)+"-a")

	path := filepath.Join(dir, netnstest.Prefix(t)+"-late")
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := netns.Open(path); !errors.Is(err, netns.ErrNotNsfs) {
		t.Fatalf("Open before the bind mount = %v, want ErrNotNsfs", err)
	}
	if err := unix.Mount(a.Path, path, "none", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s on %s: %v", a.Path, path, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", path, err)
		}
	})
	ns, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if ns.Inode() != a.Inode || ns.Path() != path {
		t.Fatalf("Open(%s): inode %d, path %s; want inode %d", path, ns.Inode(), ns.Path(), a.Inode)
	}
	if ns.Inode() == home {
		t.Fatal("the test namespace has the process's inode")
	}
}

// TestDoEntersAndRestores checks that fn runs in the namespace and that the
// thread it ran on is back in its own namespace afterwards, still alive
// (handed back to the scheduler, not discarded).
func TestDoEntersAndRestores(t *testing.T) {
	netnstest.RequireRoot(t)
	home := processNetns(t) // before anything switches a thread
	a, ns := newNetns(t)

	var tid int
	var inside uint64
	err := ns.Do(func() error {
		tid = unix.Gettid()
		var err error
		inside, err = threadNetns(tid)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != a.Inode {
		t.Fatalf("fn ran in namespace %d, want %d", inside, a.Inode)
	}
	after, err := threadNetns(tid)
	if err != nil {
		t.Fatalf("thread %d after Do: %v (discarded although it switched back?)", tid, err)
	}
	if after != home {
		t.Fatalf("thread %d is in namespace %d after Do, want %d", tid, after, home)
	}
}

// TestDoReturnsCallbackError checks that fn's error comes back unchanged,
// and that the thread is restored all the same.
func TestDoReturnsCallbackError(t *testing.T) {
	netnstest.RequireRoot(t)
	home := processNetns(t)
	a, ns := newNetns(t)
	errFn := errors.New("callback failed")
	var tid int
	err := ns.Do(func() error {
		tid = unix.Gettid()
		return fmt.Errorf("in %s: %w", a.Name, errFn)
	})
	if !errors.Is(err, errFn) {
		t.Fatalf("Do = %v, want fn's error", err)
	}
	if strings.Contains(err.Error(), "restore") {
		t.Fatalf("Do = %v: restoring should have worked", err)
	}
	if got, err := threadNetns(tid); err != nil || got != home {
		t.Fatalf("thread %d after a failing fn: namespace %d, %v", tid, got, err)
	}
}

// TestDoEnterFailure checks that a namespace that cannot be entered is
// reported with its path and fn does not run.
func TestDoEnterFailure(t *testing.T) {
	netnstest.RequireRoot(t)
	a, ns := newNetns(t)
	ns.Close()
	ran := false
	err := ns.Do(func() error { ran = true; return nil })
	if !errors.Is(err, unix.EBADF) || !strings.Contains(err.Error(), a.Path) {
		t.Fatalf("Do on a closed namespace = %v, want EBADF naming %s", err, a.Path)
	}
	if ran {
		t.Fatal("fn ran although entering failed")
	}
}

// TestDoNew checks that DoNew runs fn in a namespace of its own and restores
// the thread.
func TestDoNew(t *testing.T) {
	netnstest.RequireRoot(t)
	home := processNetns(t)
	var tid int
	var inside [2]uint64
	for i := range inside {
		err := netns.DoNew(func() error {
			tid = unix.Gettid()
			var err error
			inside[i], err = threadNetns(tid)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := threadNetns(tid); err != nil || got != home {
			t.Fatalf("thread %d after DoNew: namespace %d, %v; want %d", tid, got, err, home)
		}
	}
	if inside[0] == home || inside[1] == home || inside[0] == inside[1] {
		t.Fatalf("DoNew ran in namespaces %v (process: %d), want two new ones", inside, home)
	}
}

// restoreFailureEnv carries the namespace path to the child process of
// TestRestoreFailureKeepsThreadLocked.
const restoreFailureEnv = "NSINT_NETNS_TEST_RESTORE_FAILURE"

// restoreFailureDone is what the child prints once the thread has ended.
const restoreFailureDone = "thread ended after failing to switch back"

// TestRestoreFailureKeepsThreadLocked provokes a failed switch back: fn
// drops CAP_SYS_ADMIN from its thread's effective capabilities (they are per
// thread), so setns back home fails with EPERM. Do must report it with fn's
// own error, and the thread must never run anything again: it stays locked,
// so the runtime terminates it when Do's goroutine ends. A thread that was
// unlocked instead would stay in the process, in the test namespace.
//
// The provocation runs in a child process (this test binary again): were
// the thread handed back, it would poison only the child, and this process
// still removes the namespace.
func TestRestoreFailureKeepsThreadLocked(t *testing.T) {
	if path := os.Getenv(restoreFailureEnv); path != "" {
		provokeRestoreFailure(t, path)
		return
	}
	netnstest.RequireRoot(t)
	a, _ := newNetns(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRestoreFailureKeepsThreadLocked$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), restoreFailureEnv+"="+a.Path)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), restoreFailureDone) {
		t.Fatalf("child process: %v\n%s", err, out)
	}
}

// provokeRestoreFailure is the child's part of
// TestRestoreFailureKeepsThreadLocked.
func provokeRestoreFailure(t *testing.T, path string) {
	ns, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	errFn := errors.New("callback failed")
	// The runtime never terminates the main thread (it parks it for good
	// instead), so a run that happens to land there cannot show the thread
	// ending; it is tried again, and the parked thread is not used again.
	for attempt := 0; ; attempt++ {
		var tid int
		err := ns.Do(func() error {
			tid = unix.Gettid()
			if err := dropCapSysAdmin(); err != nil {
				return fmt.Errorf("drop CAP_SYS_ADMIN: %w", err)
			}
			return errFn
		})
		if !errors.Is(err, errFn) || !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "restore netns") {
			t.Fatalf("Do = %v, want fn's error joined with the EPERM of restoring", err)
		}
		if tid == os.Getpid() && attempt < 3 {
			t.Logf("attempt %d ran on the main thread; again", attempt)
			continue
		}
		if tid == os.Getpid() {
			t.Fatal("every attempt ran on the main thread")
		}
		deadline := time.Now().Add(5 * time.Second)
		for threadAlive(tid) {
			if time.Now().After(deadline) {
				got, _ := threadNetns(tid)
				t.Fatalf("thread %d is still alive (namespace %d) 5 s after it failed to switch back", tid, got)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%s (thread %d, attempt %d)", restoreFailureDone, tid, attempt)
		return
	}
}

// newNetns creates a test namespace (removed at cleanup) and opens it.
func newNetns(t *testing.T) (*netnstest.NS, *netns.NS) {
	t.Helper()
	a := netnstest.New(t, netnstest.Dir(t), netnstest.Prefix(t)+"-a")
	ns, err := netns.Open(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return a, ns
}

func dropCapSysAdmin() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[0].Effective &^= 1 << unix.CAP_SYS_ADMIN
	return unix.Capset(&hdr, &data[0])
}

// processNetns returns the inode of the process's network namespace, as the
// thread running the test sees it. Not /proc/self, the main thread: a thread
// that failed to switch back is parked for good if it is the main one.
func processNetns(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// threadNetns returns the inode of the network namespace of thread tid of
// this process.
func threadNetns(tid int) (uint64, error) {
	var st unix.Stat_t
	path := fmt.Sprintf("/proc/self/task/%d/ns/net", tid)
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

func threadAlive(tid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid))
	return err == nil
}
