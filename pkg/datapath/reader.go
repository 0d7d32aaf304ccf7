package datapath

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// ErrReaderOpen is returned by NewReader while another Reader is open.
var ErrReaderOpen = errors.New("report reader already open")

// ErrFlushed is returned by Read after Flush, once every report that was in
// the ring has been read.
var ErrFlushed = ringbuf.ErrFlushed

// Reader is the single consumer of the report ring (the events map, a BPF
// ring buffer all CPUs write to). A report the ring has no room for is
// never lost: the kernel keeps its counts for the next report and counts
// the refusal (Stats.RingFull). The programs wake the reader once per
// Config.WakeupReports reports; in between it looks at the ring every
// Config.ReportPoll.
type Reader struct {
	d        *Datapath
	rr       *ringbuf.Reader
	rec      ringbuf.Record
	deadline atomic.Int64 // the caller's, in Unix ns; 0: none
	bad      atomic.Uint64
	decoded  atomic.Uint64
	closed   atomic.Bool
}

// NewReader opens the reader of the report ring. Only one can be open at a
// time.
func (d *Datapath) NewReader() (*Reader, error) {
	if !d.readerOpen.CompareAndSwap(false, true) {
		return nil, ErrReaderOpen
	}
	rr, err := ringbuf.NewReader(d.objs.Events)
	if err != nil {
		d.readerOpen.Store(false)
		return nil, fmt.Errorf("open report ring reader: %w", err)
	}
	r := &Reader{d: d, rr: rr}
	r.lookNow()
	return r, nil
}

// Read blocks until the next report and decodes it into ev. ev.Data points
// into the Reader's buffer and stays valid only until the next Read.
// After Close, Read returns an error matching os.ErrClosed; after a
// deadline, os.ErrDeadlineExceeded. Read must not be called concurrently.
func (r *Reader) Read(ev *Event) error {
	for {
		err := r.rr.ReadInto(&r.rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// A look at the ring came round and read it empty.
			if d := r.deadline.Load(); d != 0 && time.Now().UnixNano() >= d {
				return fmt.Errorf("read report ring: %w", err)
			}
			r.waitNext()
			continue
		}
		if err != nil {
			return fmt.Errorf("read report ring: %w", err)
		}
		if err := r.d.decodeEvent(r.rec.RawSample, ev); err != nil {
			r.bad.Add(1)
			continue
		}
		r.decoded.Add(1)
		return nil
	}
}

// lookNow makes the next read look at the ring without waiting for a
// wakeup: reports written without one may be there already.
func (r *Reader) lookNow() { r.rr.SetDeadline(time.Now()) }

// waitNext makes the ring reader wait for a wakeup until the next look at
// the ring or the caller's deadline, whichever comes first.
func (r *Reader) waitNext() {
	t := time.Now().Add(r.d.cfg.ReportPoll)
	if d := r.deadline.Load(); d != 0 && d < t.UnixNano() {
		t = time.Unix(0, d)
	}
	r.rr.SetDeadline(t)
}

// SetDeadline makes Read return os.ErrDeadlineExceeded after t once no
// report is pending; the zero time removes the deadline. It waits for a Read
// in progress to return: to end a blocked Read, use Flush.
func (r *Reader) SetDeadline(t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	r.deadline.Store(ns)
	r.lookNow()
}

// Flush makes Read, also one blocked now, return every report already in
// the ring and then an error matching ErrFlushed.
func (r *Reader) Flush() error {
	if err := r.rr.Flush(); err != nil {
		return fmt.Errorf("flush report ring reader: %w", err)
	}
	return nil
}

// Malformed is how many records could not be decoded (should stay 0).
func (r *Reader) Malformed() uint64 { return r.bad.Load() }

// Events is how many reports Read returned.
func (r *Reader) Events() uint64 { return r.decoded.Load() }

// Close stops the reader and unblocks a pending Read. A new Reader may be
// opened afterwards.
func (r *Reader) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := r.rr.Close()
	r.d.readerOpen.Store(false)
	if err != nil {
		return fmt.Errorf("close report ring reader: %w", err)
	}
	return nil
}
