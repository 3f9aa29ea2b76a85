package bcc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/iovisor/gobpf/internal/perfring"
)

// Record is one record read from a perf map or a ring buffer: the CPU
// (-1 for ring buffers), the raw bytes the program submitted (for perf
// maps padded by the kernel to a length of 4 modulo 8: 64 bytes arrive as
// 68) or, with LostSamples > 0, a notice that the kernel dropped that many
// records because the CPU's ring was full.
type Record = perfring.Record

// PerfReaderOptions tunes a PerfReader: PageCount (ring pages per CPU, a
// power of two; 0 means BPF_PERF_READER_PAGE_CNT), Watermark (bytes pending
// before the kernel wakes the reader; 0 means a quarter of the ring) and
// PollInterval (how often an idle reader looks at the rings, which bounds
// the latency of records below the watermark; 0 means 3 ms).
type PerfReaderOptions = perfring.PerfReaderOptions

// BPF_PERF_READER_PAGE_CNT is the default number of pages of each CPU's
// ring (256 KiB with 4 KiB pages; gobpf used 8, which loses records at
// high event rates).
const BPF_PERF_READER_PAGE_CNT = 64

// readerErr maps perfring's errors onto this package's sentinels.
func readerErr(err error) error {
	if errors.Is(err, perfring.ErrClosed) {
		return ErrClosed
	}
	return err
}

// tableFD runs f with the table's map fd while the module cannot close it.
func tableFD(table *Table, f func(fd int) error) error {
	if table == nil {
		return errors.New("bcc: nil table")
	}
	if err := table.begin(); err != nil {
		return err
	}
	defer table.end()
	return f(table.fd)
}

func tableName(t *Table) string {
	if t == nil {
		return "<nil>"
	}
	if t.name == "" {
		return t.missing // an unknown table: the name asked of TableId
	}
	return t.name
}

// PerfReader reads a BPF_PERF_OUTPUT table (a perf event array) with one
// ring per online CPU, without cgo. Read, ReadInto and ReadBatch block until
// a record arrives, ctx is done (they return ctx.Err()) or the reader is
// closed (ErrClosed); Close wakes a blocked read at once. Use one goroutine
// to read; Close may come from any goroutine. Module.Close closes it.
type PerfReader struct {
	r *perfring.PerfReader
	m *Module
}

// NewPerfReader opens a reader on the perf event array table and installs
// its rings in the table: programs' perf_submit calls land in it from now on.
func NewPerfReader(table *Table, opts ...PerfReaderOptions) (*PerfReader, error) {
	if len(opts) > 1 {
		return nil, errors.New("bcc: NewPerfReader takes at most one PerfReaderOptions")
	}
	var o PerfReaderOptions
	if len(opts) == 1 {
		o = opts[0]
	}
	if o.PageCount == 0 {
		o.PageCount = BPF_PERF_READER_PAGE_CNT
	}
	var pr *perfring.PerfReader
	err := tableFD(table, func(fd int) (err error) {
		pr, err = perfring.NewPerfReader(fd, o)
		return err
	})
	if err != nil {
		return nil, errorf("perf reader on table %s: %w", tableName(table), err)
	}
	r := &PerfReader{r: pr, m: table.module}
	r.m.own(r)
	return r, nil
}

// Read waits for the next record.
func (r *PerfReader) Read(ctx context.Context) (Record, error) {
	rec, err := r.r.Read(ctx)
	return rec, readerErr(err)
}

// ReadInto waits for the next record and stores it in rec, reusing the
// capacity of rec.RawSample.
func (r *PerfReader) ReadInto(ctx context.Context, rec *Record) error {
	return readerErr(r.r.ReadInto(ctx, rec))
}

// ReadBatch waits for at least one record, then fills recs with as many
// pending records as fit (reusing each RawSample's capacity) and returns
// how many it stored. It is the fast path: one call per burst.
func (r *PerfReader) ReadBatch(ctx context.Context, recs []Record) (int, error) {
	n, err := r.r.ReadBatch(ctx, recs)
	return n, readerErr(err)
}

// ReadAvailable is ReadBatch without the wait: it returns 0 when no record
// is pending.
func (r *PerfReader) ReadAvailable(recs []Record) (int, error) {
	n, err := r.r.ReadAvailable(recs)
	return n, readerErr(err)
}

// Pause stops the kernel from writing to the reader's rings (programs'
// perf_submit calls fail meanwhile); records already written stay readable.
func (r *PerfReader) Pause() error { return readerErr(r.r.Pause()) }

// Resume undoes Pause.
func (r *PerfReader) Resume() error { return readerErr(r.r.Resume()) }

// Close removes the rings from the table and frees them. It is idempotent.
func (r *PerfReader) Close() error {
	r.m.disown(r)
	return r.r.Close()
}

// batchReader is what a pump needs from a reader.
type batchReader interface {
	ReadBatch(ctx context.Context, recs []Record) (int, error)
	ReadAvailable(recs []Record) (int, error)
	Close() error
}

// pump is the goroutine behind PerfMap and RingBuf: it reads batches and
// delivers them on channels.
type pump struct {
	r         batchReader
	m         *Module
	closer    *pumpCloser // what the module owns
	receiver  chan []byte
	lostChan  chan uint64
	lost      atomic.Uint64
	drainPrep func()   // before the final drain (perf: Pause)
	drainMax  int      // stop draining after this many bytes (0: until empty)
	cancel    func()   // ends the reading loop
	abort     chan any // closed by Module.Close: give up on sends
	done      chan struct{}

	mu        sync.Mutex
	started   bool
	stopped   bool
	stopOnce  sync.Once
	abortOnce sync.Once
}

type pumpCloser struct{ p *pump }

// Close is called by Module.Close: stop without draining.
func (c *pumpCloser) Close() error {
	c.p.finish(false)
	return nil
}

func newPump(r batchReader, m *Module, receiver chan []byte, lost chan uint64) *pump {
	p := &pump{r: r, m: m, receiver: receiver, lostChan: lost, abort: make(chan any), done: make(chan struct{})}
	p.closer = &pumpCloser{p}
	m.own(p.closer)
	return p
}

func (p *pump) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.stopped {
		return
	}
	p.started = true
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.run(ctx)
}

func (p *pump) run(ctx context.Context) {
	defer close(p.done)
	recs := make([]Record, 128)
	for {
		n, err := p.r.ReadBatch(ctx, recs)
		if err != nil {
			break
		}
		if !p.deliver(recs[:n]) {
			return
		}
	}
	select {
	case <-p.abort:
		return
	default:
	}
	// Graceful stop: hand over what the rings still hold.
	if p.drainPrep != nil {
		p.drainPrep()
	}
	total := 0
	for p.drainMax == 0 || total < p.drainMax {
		n, err := p.r.ReadAvailable(recs)
		if n == 0 || err != nil {
			return
		}
		for _, rec := range recs[:n] {
			total += len(rec.RawSample) + 8
		}
		if !p.deliver(recs[:n]) {
			return
		}
	}
}

// deliver sends a batch; it returns false if the pump was aborted.
func (p *pump) deliver(recs []Record) bool {
	size := 0
	for i := range recs {
		size += len(recs[i].RawSample)
	}
	slab := make([]byte, size) // one allocation per batch
	for i := range recs {
		rec := &recs[i]
		if rec.LostSamples > 0 {
			p.lost.Add(rec.LostSamples)
			if p.lostChan != nil {
				select {
				case p.lostChan <- rec.LostSamples:
				case <-p.abort:
					return false
				}
			}
			continue
		}
		n := copy(slab, rec.RawSample)
		data := slab[:n:n]
		slab = slab[n:]
		select {
		case p.receiver <- data:
		case <-p.abort:
			return false
		}
	}
	return true
}

// finish ends the pump: gracefully (drain and deliver everything pending,
// waiting for the receiver) or not (Module.Close: pending sends are
// abandoned). Concurrent and repeated calls wait for the first to end.
func (p *pump) finish(graceful bool) {
	if !graceful {
		p.abortOnce.Do(func() { close(p.abort) })
	}
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.stopped = true
		started := p.started
		p.mu.Unlock()
		if started {
			p.cancel()
			<-p.done
		}
		p.r.Close()
		p.m.disown(p.closer)
	})
}

// PerfMap delivers the records of a BPF_PERF_OUTPUT table on a channel,
// as gobpf's PerfMap does.
type PerfMap struct {
	p *pump
	r *perfring.PerfReader
}

// InitPerfMap opens the perf map behind table with BPF_PERF_READER_PAGE_CNT
// pages per CPU. Records go to receiverChan and lost-record counts to
// lostChan once Start is called. lostChan may be nil: losses are then only
// counted (see Lost).
func InitPerfMap(table *Table, receiverChan chan []byte, lostChan chan uint64) (*PerfMap, error) {
	return InitPerfMapWithPageCnt(table, receiverChan, lostChan, BPF_PERF_READER_PAGE_CNT)
}

// InitPerfMapWithPageCnt is InitPerfMap with pageCnt pages (a power of two)
// per CPU. The rings are installed at once: records submitted before Start
// wait in them.
func InitPerfMapWithPageCnt(table *Table, receiverChan chan []byte, lostChan chan uint64, pageCnt int) (*PerfMap, error) {
	if receiverChan == nil {
		return nil, errors.New("bcc: InitPerfMap: nil receiver channel")
	}
	if pageCnt <= 0 || pageCnt&(pageCnt-1) != 0 {
		return nil, fmt.Errorf("bcc: InitPerfMap: page count %d is not a power of two", pageCnt)
	}
	var pr *perfring.PerfReader
	err := tableFD(table, func(fd int) (err error) {
		pr, err = perfring.NewPerfReader(fd, PerfReaderOptions{PageCount: pageCnt})
		return err
	})
	if err != nil {
		return nil, errorf("perf map %s: %w", tableName(table), err)
	}
	pm := &PerfMap{r: pr, p: newPump(pr, table.module, receiverChan, lostChan)}
	pm.p.drainPrep = func() { pr.Pause() }
	return pm, nil
}

// Start starts delivering records on the receiver channel (from a new
// goroutine). Calling it again, or after Stop, does nothing.
func (pm *PerfMap) Start() { pm.p.start() }

// Stop stops delivering and closes the perf map. It pauses the rings,
// delivers every record already in them, and returns once the delivering
// goroutine has ended: nothing read is dropped, so Stop blocks until the
// receiver has taken every pending record off the channel (keep receiving
// until Stop returns, or use a channel with room). It is idempotent.
func (pm *PerfMap) Stop() { pm.p.finish(true) }

// Lost returns how many records the kernel dropped because a ring was
// full, as reported so far.
func (pm *PerfMap) Lost() uint64 { return pm.p.lost.Load() }
