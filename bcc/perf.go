package bcc

import (
	"context"
	"errors"

	"github.com/iovisor/gobpf/internal/chanpump"
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
//
// Several readers (and PerfMaps) of this process may be open on one table:
// the newest receives the records. Closing a reader never unplugs another:
// closing the newest hands the table back to the previous one still open,
// closing an older one changes nothing for the newer.
//
// Records of one CPU's ring are read in the order they were submitted;
// Record.CPU says which ring a record came from (see PerfMap on order).
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
	if err := r.m.own(r); err != nil { // Module.Close began meanwhile
		pr.Close()
		return nil, errorf("perf reader on table %s: %w", tableName(table), err)
	}
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

// PerfMap delivers the records of a BPF_PERF_OUTPUT table on a channel,
// as gobpf's PerfMap does. Each CPU has its own ring: the records of one
// CPU arrive in the order they were submitted, those of different CPUs
// interleave as the rings are read (a thread the kernel moves to another
// CPU may see its later records arrive first). Programs that need one
// order use a ring buffer (BPF_RINGBUF_OUTPUT, InitRingBuf) or stamp
// their records.
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
		return nil, errorf("InitPerfMap: page count %d is not a power of two", pageCnt)
	}
	var pr *perfring.PerfReader
	err := tableFD(table, func(fd int) (err error) {
		pr, err = perfring.NewPerfReader(fd, PerfReaderOptions{PageCount: pageCnt})
		return err
	})
	if err != nil {
		return nil, errorf("perf map %s: %w", tableName(table), err)
	}
	p, err := newPump(pr, table.module, receiverChan, lostChan, chanpump.Options{DrainPrep: func() { pr.Pause() }})
	if err != nil { // Module.Close began meanwhile
		pr.Close()
		return nil, errorf("perf map %s: %w", tableName(table), err)
	}
	return &PerfMap{r: pr, p: p}, nil
}

// Start starts delivering records on the receiver channel (from a new
// goroutine). Calling it again, or after Stop, does nothing.
func (pm *PerfMap) Start() { pm.p.Start() }

// Stop stops delivering and closes the perf map. It pauses the rings and
// hands over the records already read and those still in the rings as
// long as the receiver keeps taking them; once the receiver has taken
// nothing for StopGrace (nobody receives any more) it counts the rest as
// lost (see Lost, and lostChan if it has room) and returns. So Stop never
// hangs, and a receiver that keeps receiving until Stop returns gets
// everything. It is idempotent.
func (pm *PerfMap) Stop() { pm.p.finish(true) }

// Lost returns how many records were lost so far: dropped by the kernel
// because a ring was full (as reported with the ring's next record), and
// read but never handed over because Stop gave up on the receiver or the
// module was closed.
func (pm *PerfMap) Lost() uint64 { return pm.p.Lost() }
