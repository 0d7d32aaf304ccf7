package agent

import (
	"context"
	"errors"
	"sync"
)

// ComponentError is the failure of one of the agent's long-running
// components; Run returns the first one.
type ComponentError struct {
	Component string // "discovery", "exporter", "api", …
	Err       error
}

// Error reads "<component>: <cause>".
func (e *ComponentError) Error() string { return e.Component + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *ComponentError) Unwrap() error { return e.Err }

// supervisor runs the agent's long-running components. The first one that
// fails cancels the supervisor's context, which every component started
// under it stops with, and is the error Err returns. Components are started
// in groups so that the agent can wait for some (discovery, say) before
// stopping others (the report pipeline) in the order its shutdown needs.
type supervisor struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	// failed is called once, with the first failure, before the context
	// is cancelled.
	failed func(*ComponentError)
	// wrap, when set, wraps each component's function (tests inject
	// failures through it).
	wrap func(name string, run func() error) func() error

	mu    sync.Mutex
	first *ComponentError
}

func newSupervisor(parent context.Context, failed func(*ComponentError)) *supervisor {
	ctx, cancel := context.WithCancelCause(parent)
	return &supervisor{ctx: ctx, cancel: cancel, failed: failed}
}

// Context ends when the parent context does or a component fails.
func (s *supervisor) Context() context.Context { return s.ctx }

// Err returns the first component failure, as a *ComponentError, or nil.
func (s *supervisor) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == nil {
		return nil
	}
	return s.first
}

// stop cancels the supervisor's context without a failure.
func (s *supervisor) stop() { s.cancel(context.Canceled) }

// fail records err as component name's failure. An error that only says
// the supervisor's context ended is the component stopping as asked, not
// a failure.
func (s *supervisor) fail(name string, err error) {
	if err == nil || (s.ctx.Err() != nil && errors.Is(err, context.Canceled)) {
		return
	}
	ce := &ComponentError{Component: name, Err: err}
	s.mu.Lock()
	if s.first != nil {
		s.mu.Unlock()
		return
	}
	s.first = ce
	s.mu.Unlock()
	if s.failed != nil {
		s.failed(ce)
	}
	s.cancel(ce)
}

// group is a set of components the agent waits for together.
type group struct {
	s  *supervisor
	wg sync.WaitGroup
}

func (s *supervisor) group() *group { return &group{s: s} }

// Go runs component name. run returns when the component has stopped: nil
// when it was asked to (its context ended), else why it failed.
func (g *group) Go(name string, run func() error) {
	if g.s.wrap != nil {
		run = g.s.wrap(name, run)
	}
	g.wg.Go(func() { g.s.fail(name, run()) })
}

// Wait waits for every component of the group to return.
func (g *group) Wait() { g.wg.Wait() }
