package datapath

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/perf"
)

// ErrReaderOpen is returned by NewReader while another Reader is open.
var ErrReaderOpen = errors.New("perf reader already open")

// ErrFlushed is returned by Read after Flush, once every report that was in
// the rings has been read.
var ErrFlushed = perf.ErrFlushed

// Reader is the single consumer of the shared perf event array.
type Reader struct {
	d       *Datapath
	pr      *perf.Reader
	rec     perf.Record
	lost    atomic.Uint64
	bad     atomic.Uint64
	decoded atomic.Uint64
	closed  atomic.Bool
}

// NewReader opens the perf reader with the configured per-CPU buffer size
// and wakeup count. Only one can be open at a time.
func (d *Datapath) NewReader() (*Reader, error) {
	if !d.readerOpen.CompareAndSwap(false, true) {
		return nil, ErrReaderOpen
	}
	pr, err := perf.NewReaderWithOptions(d.objs.Events, d.cfg.PerCPUBufferBytes,
		perf.ReaderOptions{WakeupEvents: d.cfg.WakeupEvents})
	if err != nil {
		d.readerOpen.Store(false)
		return nil, fmt.Errorf("open perf reader: %w", err)
	}
	return &Reader{d: d, pr: pr}, nil
}

// Read blocks until the next report and decodes it into ev. ev.Data points
// into the Reader's buffer and stays valid only until the next Read. Lost
// samples are counted (LostSamples) and skipped. After Close, Read returns
// an error matching os.ErrClosed; after a deadline, os.ErrDeadlineExceeded.
// Read must not be called concurrently.
func (r *Reader) Read(ev *Event) error {
	for {
		if err := r.pr.ReadInto(&r.rec); err != nil {
			return fmt.Errorf("read perf ring: %w", err)
		}
		if r.rec.LostSamples > 0 {
			r.lost.Add(r.rec.LostSamples)
			continue
		}
		if err := r.d.decodeEvent(r.rec.RawSample, ev); err != nil {
			r.bad.Add(1)
			continue
		}
		ev.CPU = r.rec.CPU
		r.decoded.Add(1)
		return nil
	}
}

// SetDeadline makes Read return os.ErrDeadlineExceeded after t once no
// report is pending; the zero time removes the deadline. It waits for a Read
// in progress to return: to end a blocked Read, use Flush.
func (r *Reader) SetDeadline(t time.Time) { r.pr.SetDeadline(t) }

// Flush makes Read, also one blocked now, return every report already in
// the rings and then an error matching ErrFlushed.
func (r *Reader) Flush() error {
	if err := r.pr.Flush(); err != nil {
		return fmt.Errorf("flush perf reader: %w", err)
	}
	return nil
}

// LostSamples is how many reports the kernel could not queue because a
// per-CPU ring was full.
func (r *Reader) LostSamples() uint64 { return r.lost.Load() }

// Malformed is how many samples could not be decoded (should stay 0).
func (r *Reader) Malformed() uint64 { return r.bad.Load() }

// Events is how many reports Read returned.
func (r *Reader) Events() uint64 { return r.decoded.Load() }

// Close stops the reader and unblocks a pending Read. A new Reader may be
// opened afterwards.
func (r *Reader) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := r.pr.Close()
	r.d.readerOpen.Store(false)
	if err != nil {
		return fmt.Errorf("close perf reader: %w", err)
	}
	return nil
}
