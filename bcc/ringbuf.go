package bcc

import (
	"context"
	"errors"
	"time"

	"github.com/iovisor/gobpf/internal/chanpump"
	"github.com/iovisor/gobpf/internal/perfring"
)

// Ring buffers (BPF_MAP_TYPE_RINGBUF, Linux 5.8+) are one ring shared by
// all CPUs; records arrive in the order they were submitted. In bcc C:
//
//	BPF_RINGBUF_OUTPUT(events, 8);  // 8 pages, a power of two
//	BPF_ARRAY(dropped, u64, 1);     // reservations the ring refused
//
//	struct event *e = events.ringbuf_reserve(sizeof(*e));
//	if (!e) {                       // ring full: count it, the reader can't
//		int zero = 0;
//		u64 *d = dropped.lookup(&zero);
//		if (d)
//			__sync_fetch_and_add(d, 1);
//		return 0;
//	}
//	e->... = ...;
//	events.ringbuf_submit(e, 0);
//
// or, copying from the stack, `if (events.ringbuf_output(&data,
// sizeof(data), 0) < 0) { count it }`. Unlike perf maps, the kernel does
// not tell the reader about records it could not store: count them in the
// program as above.

// RingBufReader reads a BPF_RINGBUF_OUTPUT table without cgo. It has the
// same Read/ReadInto/ReadBatch/Close semantics as PerfReader; records have
// CPU == -1 and exactly the submitted length.
type RingBufReader struct {
	r *perfring.RingBufReader
	m *Module
}

// NewRingBufReader maps the ring buffer table for reading.
func NewRingBufReader(table *Table) (*RingBufReader, error) {
	var rr *perfring.RingBufReader
	err := tableFD(table, func(fd int) (err error) {
		rr, err = perfring.NewRingBufReader(fd)
		return err
	})
	if err != nil {
		return nil, errorf("ring buffer reader on table %s: %w", tableName(table), err)
	}
	r := &RingBufReader{r: rr, m: table.module}
	if err := r.m.own(r); err != nil { // Module.Close began meanwhile
		rr.Close()
		return nil, errorf("ring buffer reader on table %s: %w", tableName(table), err)
	}
	return r, nil
}

// Read waits for the next record.
func (r *RingBufReader) Read(ctx context.Context) (Record, error) {
	rec, err := r.r.Read(ctx)
	return rec, readerErr(err)
}

// ReadInto waits for the next record and stores it in rec, reusing the
// capacity of rec.RawSample.
func (r *RingBufReader) ReadInto(ctx context.Context, rec *Record) error {
	return readerErr(r.r.ReadInto(ctx, rec))
}

// ReadBatch waits for at least one record, then fills recs with as many
// pending records as fit and returns how many it stored.
func (r *RingBufReader) ReadBatch(ctx context.Context, recs []Record) (int, error) {
	n, err := r.r.ReadBatch(ctx, recs)
	return n, readerErr(err)
}

// ReadAvailable is ReadBatch without the wait: it returns 0 when no record
// is pending.
func (r *RingBufReader) ReadAvailable(recs []Record) (int, error) {
	n, err := r.r.ReadAvailable(recs)
	return n, readerErr(err)
}

// Close unmaps the ring. A blocked read returns ErrClosed at once. It is
// idempotent.
func (r *RingBufReader) Close() error {
	r.m.disown(r)
	return r.r.Close()
}

// RingBuf delivers the records of a BPF_RINGBUF_OUTPUT table on a channel.
type RingBuf struct {
	p *pump
}

// InitRingBuf opens the ring buffer behind table; records go to
// receiverChan once Start is called (those submitted before wait in the
// ring).
func InitRingBuf(table *Table, receiverChan chan []byte) (*RingBuf, error) {
	if receiverChan == nil {
		return nil, errors.New("bcc: InitRingBuf: nil receiver channel")
	}
	var rr *perfring.RingBufReader
	err := tableFD(table, func(fd int) (err error) {
		rr, err = perfring.NewRingBufReader(fd)
		return err
	})
	if err != nil {
		return nil, errorf("ring buffer %s: %w", tableName(table), err)
	}
	// The ring cannot be paused: the final drain takes at most one ring's
	// worth, which is everything submitted before Stop.
	p, err := newPump(rr, table.module, receiverChan, nil, chanpump.Options{DrainMax: rr.Size(), Gather: 200 * time.Microsecond})
	if err != nil { // Module.Close began meanwhile
		rr.Close()
		return nil, errorf("ring buffer %s: %w", tableName(table), err)
	}
	return &RingBuf{p: p}, nil
}

// Start starts delivering records on the receiver channel (from a new
// goroutine). Calling it again, or after Stop, does nothing.
func (rb *RingBuf) Start() { rb.p.Start() }

// Stop stops delivering and closes the ring buffer. It hands over the
// records already read and those in the ring (up to one ring's worth) as
// long as the receiver keeps taking them; once the receiver has taken
// nothing for StopGrace it counts the rest as lost (see Lost) and
// returns. It is idempotent.
func (rb *RingBuf) Stop() { rb.p.finish(true) }

// Lost returns how many records were read but never handed over because
// Stop gave up on the receiver or the module was closed. (Records the ring
// had no room for are not reported by the kernel: count them in the
// program, see above.)
func (rb *RingBuf) Lost() uint64 { return rb.p.Lost() }
