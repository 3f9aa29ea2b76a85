package perfring

import (
	"context"
	"errors"
	"sync"
)

// source is what a reader reads: the rings of a perf event array or a
// ring buffer.
type source interface {
	// next stores the next pending record in rec; false when there is
	// none (yet).
	next(rec *Record) (bool, error)
	// release hands the space of the records consumed so far back to the
	// kernel, after fill stored k of them in a batch.
	release(k int)
	// wait blocks until records may be pending, ctx is done or the reader
	// is closed; nil means look at the rings again.
	wait(ctx context.Context) error
	// free releases the rings; the caller holds mu or is the only user.
	free()
}

// reader holds what PerfReader and RingBufReader share: the lock that
// serializes callers, the poller Close wakes them through, and the loops
// that wait for records.
type reader struct {
	mu   sync.Mutex // held by readers; Close takes it to free the rings
	poll *poller
	src  source
	err  error // met by fill after it had stored records; the next call returns it
}

func ctxDone(ctx context.Context) error {
	if done := ctx.Done(); done != nil {
		select {
		case <-done:
			return ctx.Err()
		default:
		}
	}
	return nil
}

// Close frees the rings. A blocked Read returns ErrClosed at once. Close
// is idempotent.
func (r *reader) Close() error {
	if r.poll.closed.Swap(true) {
		return nil
	}
	r.poll.wake()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.src.free()
	return nil
}

// Read waits for the next record.
func (r *reader) Read(ctx context.Context) (Record, error) {
	var rec Record
	err := r.ReadInto(ctx, &rec)
	return rec, err
}

// ReadInto waits for the next record and stores it in rec, reusing
// rec.RawSample's capacity.
func (r *reader) ReadInto(ctx context.Context, rec *Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.poll.closed.Load() {
			return ErrClosed
		}
		if err := ctxDone(ctx); err != nil {
			return err
		}
		if err := r.err; err != nil {
			r.err = nil
			return err
		}
		if ok, err := r.src.next(rec); ok || err != nil {
			return err
		}
		if err := r.src.wait(ctx); err != nil {
			return err
		}
	}
}

// ReadBatch waits until at least one record is available, then fills recs
// with as many pending records as fit (reusing each RawSample's capacity)
// and returns how many it stored.
func (r *reader) ReadBatch(ctx context.Context, recs []Record) (int, error) {
	if len(recs) == 0 {
		return 0, errors.New("perfring: ReadBatch needs a non-empty slice")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.poll.closed.Load() {
			return 0, ErrClosed
		}
		if err := ctxDone(ctx); err != nil {
			return 0, err
		}
		if k, err := r.fill(recs); k > 0 || err != nil {
			return k, err
		}
		if err := r.src.wait(ctx); err != nil {
			return 0, err
		}
	}
}

// ReadAvailable fills recs with records already pending (written to a
// perf ring, committed to a ring buffer) without blocking; it returns 0
// when there are none.
func (r *reader) ReadAvailable(recs []Record) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.poll.closed.Load() {
		return 0, ErrClosed
	}
	return r.fill(recs)
}

// ReadBatchBuf is ReadBatch that copies the samples one after another
// into buf instead of into each record's own RawSample: one copy from the
// ring into memory the caller carves its records from. Each stored
// record's RawSample is a full slice (len == cap) of buf, or a separate
// allocation when the rest of buf could not hold it. It returns how many
// records it stored and how many bytes of buf they took; the batch ends
// early once less than minRoom bytes of buf (its capacity) are left.
func (r *reader) ReadBatchBuf(ctx context.Context, recs []Record, buf []byte, minRoom int) (int, int, error) {
	return r.readBuf(ctx, recs, buf, minRoom, false)
}

// WaitBatchBuf is ReadBatchBuf that first waits for the source's next
// wakeup (a perf ring's watermark, the poll interval, or for a ring buffer
// any committed record) even if records are pending: a reader that has
// just drained the rings lets the next records gather, then takes them in
// one batch, rather than coming back for the few that arrived meanwhile.
func (r *reader) WaitBatchBuf(ctx context.Context, recs []Record, buf []byte, minRoom int) (int, int, error) {
	return r.readBuf(ctx, recs, buf, minRoom, true)
}

// readBuf is ReadBatchBuf, and WaitBatchBuf with waitFirst.
func (r *reader) readBuf(ctx context.Context, recs []Record, buf []byte, minRoom int, waitFirst bool) (int, int, error) {
	if len(recs) == 0 {
		if waitFirst {
			return 0, 0, errors.New("perfring: WaitBatchBuf needs a non-empty slice")
		}
		return 0, 0, errors.New("perfring: ReadBatchBuf needs a non-empty slice")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.poll.closed.Load() {
			return 0, 0, ErrClosed
		}
		if err := ctxDone(ctx); err != nil {
			return 0, 0, err
		}
		if !waitFirst {
			if k, used, err := r.fillBuf(recs, buf, minRoom); k > 0 || err != nil {
				return k, used, err
			}
		}
		waitFirst = false
		if err := r.src.wait(ctx); err != nil {
			return 0, 0, err
		}
	}
}

// ReadAvailableBuf is ReadBatchBuf without the wait.
func (r *reader) ReadAvailableBuf(recs []Record, buf []byte, minRoom int) (int, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.poll.closed.Load() {
		return 0, 0, ErrClosed
	}
	return r.fillBuf(recs, buf, minRoom)
}

func (r *reader) fill(recs []Record) (int, error) {
	k, _, err := r.fillBuf(recs, nil, 0)
	return k, err
}

// fillBuf fills recs with pending records; with buf != nil their samples
// go one after another into buf (see ReadBatchBuf).
func (r *reader) fillBuf(recs []Record, buf []byte, minRoom int) (int, int, error) {
	if err := r.err; err != nil {
		r.err = nil
		return 0, 0, err
	}
	k, used := 0, 0
	for k < len(recs) {
		rec := &recs[k]
		if buf != nil {
			if cap(buf)-used < minRoom {
				break
			}
			rec.RawSample = buf[used:used:cap(buf)]
		}
		ok, err := r.src.next(rec)
		if buf != nil && ok {
			n := len(rec.RawSample)
			if cap(rec.RawSample) == cap(buf)-used {
				used += n // stored in place, not in an allocation of its own
			}
			rec.RawSample = rec.RawSample[:n:n]
		}
		if err != nil {
			if k > 0 {
				r.err = err // report the error on the next call
				break
			}
			r.src.release(0)
			return 0, 0, err
		}
		if !ok {
			break
		}
		k++
	}
	r.src.release(k) // hand the space back before the caller works on the batch
	return k, used, nil
}
