package agent

import (
	"context"
	"errors"
	"syscall"
	"testing"
)

// The first component to fail cancels the others; Err names it and keeps
// its cause; the others, stopping because they were asked to, are no
// failures, and neither is a second failure.
func TestSupervisorFirstFailureCancelsTheRest(t *testing.T) {
	var calls []*ComponentError
	s := newSupervisor(context.Background(), func(ce *ComponentError) { calls = append(calls, ce) })
	g := s.group()
	cause := syscall.EMFILE
	fail := make(chan struct{})
	g.Go("waits", func() error {
		<-s.Context().Done()
		return s.Context().Err()
	})
	g.Go("fails", func() error {
		<-fail
		return cause
	})
	late := s.group()
	late.Go("fails later", func() error {
		<-s.Context().Done()
		return errors.New("a second failure")
	})
	close(fail)
	g.Wait()
	late.Wait()

	err := s.Err()
	var ce *ComponentError
	if !errors.As(err, &ce) || ce.Component != "fails" || !errors.Is(err, cause) {
		t.Fatalf("Err() = %v, want the failure of component \"fails\" wrapping %v", err, cause)
	}
	if err.Error() != "fails: "+cause.Error() {
		t.Errorf("Err() reads %q", err.Error())
	}
	if len(calls) != 1 || calls[0] != ce {
		t.Errorf("failed callback calls: %v, want one with the first failure", calls)
	}
	if c := context.Cause(s.Context()); !errors.Is(c, cause) {
		t.Errorf("context cause %v, want the failure", c)
	}
}

// A parent context that ends stops every component without a failure, and
// so does stop.
func TestSupervisorStopIsNoFailure(t *testing.T) {
	for _, how := range []string{"parent", "stop"} {
		parent, cancel := context.WithCancel(context.Background())
		s := newSupervisor(parent, func(ce *ComponentError) { t.Errorf("%s: failed called with %v", how, ce) })
		g := s.group()
		for _, name := range []string{"a", "b"} {
			g.Go(name, func() error {
				<-s.Context().Done()
				return s.Context().Err()
			})
		}
		g.Go("done early", func() error { return nil })
		if how == "parent" {
			cancel()
		} else {
			s.stop()
		}
		g.Wait()
		if err := s.Err(); err != nil {
			t.Errorf("%s: Err() = %v, want nil", how, err)
		}
		cancel()
	}
}

// wrap sees every component by name and can replace what it returns.
func TestSupervisorWrap(t *testing.T) {
	s := newSupervisor(context.Background(), nil)
	var seen []string
	injected := errors.New("injected")
	s.wrap = func(name string, run func() error) func() error {
		seen = append(seen, name)
		if name == "exporter" {
			return func() error { return injected }
		}
		return run
	}
	g := s.group()
	g.Go("exporter", func() error { return nil })
	g.Wait()
	if !errors.Is(s.Err(), injected) || len(seen) != 1 || seen[0] != "exporter" {
		t.Fatalf("Err() = %v, wrap saw %v", s.Err(), seen)
	}
}
