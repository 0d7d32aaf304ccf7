package netns

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread switched into the namespace and returns fn's
// error, joined with the error of switching back if that failed. fn runs on a
// goroutine of its own, locked to its thread: it must not unlock the thread,
// and goroutines it starts do not run in the namespace.
func (n *NS) Do(fn func() error) error {
	return onThread(n.path, func() error {
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter netns %s: %w", n.path, err)
		}
		return nil
	}, fn)
}

// DoNew runs fn like Do, in a new, empty network namespace (unshare(2)). The
// namespace outlives fn only if fn keeps a reference to it, such as a bind
// mount of /proc/thread-self/ns/net or an open socket.
func DoNew(fn func() error) error {
	return onThread("a new netns", func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare netns: %w", err)
		}
		return nil
	}, fn)
}

// onThread runs enter and then fn on a fresh goroutine locked to its OS
// thread, then switches the thread back to the namespace it started in.
func onThread(what string, enter, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open the thread's own netns: %w", err)
			return
		}
		defer unix.Close(home)
		if err := enter(); err != nil {
			// A failed setns or unshare changes nothing: the thread is home.
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		fnErr := fn()
		if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
			// The thread is stuck in the other namespace, so it stays locked
			// on purpose: a goroutine that exits while locked to its thread
			// takes the thread with it (the runtime terminates it instead of
			// reusing it). Unlocking would let any goroutine of the process be
			// scheduled onto it later and silently work in the wrong namespace.
			errc <- errors.Join(fnErr, fmt.Errorf("restore netns after %s: %w", what, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}
