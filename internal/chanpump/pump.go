// Package chanpump hands the records of a perf or ring buffer reader over
// on a channel: the goroutine behind bcc's PerfMap and RingBuf and elf's
// PerfMap (the channel APIs gobpf programs use).
//
// A Pump reads the rings in batches, the reader copying each record once,
// from the ring straight into a chunk of chunkSize bytes that the records
// handed over are carved from, and sends them on the caller's channel
// (without blocking while it has room), then yields to the receiver it
// woke before it waits for the rings again. While the receiver is slow
// (the channel is full) the pump keeps draining the rings into its own
// bounded queue, so that a receiver's hiccup does not overflow the
// kernel's rings; once the queue holds queueBytes it leaves the records in
// the rings, where the kernel counts what it then drops.
//
// Once a read has drained the rings, the next one waits for the kernel's
// next wakeup (a perf ring's watermark, or the poll interval) before it
// looks again, and a read goes on across chunks until the rings are empty:
// each wakeup becomes one batch and one hand-off to the receiver, rather
// than a trickle of the few records that arrived while the last batch was
// handed over. A ring buffer wakes its reader for the first record after
// it caught up, so its pump (Options.Gather), after a batch of gatherMin
// records or more, sleeps a little first: under load the records gather
// into batches, which spares the traced processes a wakeup each; a lone
// record is read at once.
package chanpump

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iovisor/gobpf/internal/perfring"
)

const (
	// pumpBatch is how many records the pump reads per wakeup at most:
	// more than a watermark's worth of small records (a quarter of 64
	// pages is 819 records of 64 bytes).
	pumpBatch = 4096
	// chunkSize is the allocation records handed over are carved from
	// (the reader copies them from the rings straight into it): few
	// objects cost the garbage collector far less than one per record.
	// Just under 32 KiB: the largest pointer-free object the runtime
	// allocates from its per-P caches (32 KiB itself takes the slower
	// large-object path: 17 vs 11 µs per chunk here, GC included). A
	// record the receiver keeps holds its chunk.
	chunkSize = 32<<10 - 64
	// chunkMinRoom: a chunk with less room left is retired.
	chunkMinRoom = 512
	// queueBytes bounds what the pump holds for a slow receiver: record
	// bytes plus queueItemCost per record.
	queueBytes    = 4 << 20
	queueItemCost = 32
	// pumpPoll is how often a pump blocked on a full channel drains the
	// rings into its queue.
	pumpPoll = time.Millisecond
	// gatherMin: see Options.Gather.
	gatherMin = 16
	// StopGrace is how long Stop waits for the receiver to take the next
	// pending record before it gives up and counts the rest as lost.
	StopGrace = 200 * time.Millisecond
)

// Reader is what a pump needs from a reader (perfring's PerfReader and
// RingBufReader).
type Reader interface {
	ReadBatchBuf(ctx context.Context, recs []perfring.Record, buf []byte, minRoom int) (int, int, error)
	WaitBatchBuf(ctx context.Context, recs []perfring.Record, buf []byte, minRoom int) (int, int, error)
	ReadAvailableBuf(recs []perfring.Record, buf []byte, minRoom int) (int, int, error)
	Close() error
}

// Options tunes a pump.
type Options struct {
	// DrainPrep runs before the final drain of a graceful Stop (perf:
	// pause the rings, so that the drain ends).
	DrainPrep func()
	// DrainMax stops the final drain after this many bytes of ring space
	// (0: until the rings are empty).
	DrainMax int
	// Gather: after a read that drained the rings and took at least
	// gatherMin records, wait this long before the next (ring buffers,
	// whose kernel wakes the reader for the first record it misses).
	Gather time.Duration
	// Order, when set, reorders each batch read before it is queued (in
	// place; lost notices included).
	Order func(recs []perfring.Record)
	// Done runs in the pump's goroutine when it ends, after the last
	// send (elf: close the channels).
	Done func()
}

// item is a record waiting to be handed over: data, or (lost > 0) a
// notice that the kernel dropped that many records.
type item struct {
	data []byte
	lost uint64
}

// Pump is the goroutine behind a channel API.
type Pump struct {
	r        Reader
	receiver chan<- []byte
	lostChan chan<- uint64
	lost     atomic.Uint64
	o        Options

	// The queue of records read but not handed over; only run uses it.
	q      []item
	qHead  int
	qBytes int
	recs   []perfring.Record
	chunk  []byte // the unused rest of the current chunk (len 0, cap the rest)
	// drained: the last read left the rings empty (it stopped before the
	// batch or the chunk was full), so the next one waits for a wakeup.
	drained   bool
	lastBatch int

	cancel    func()        // ends the reading loop (Stop or abort)
	abort     chan struct{} // closed by Module.Close: give up on sends
	done      chan struct{}
	mu        sync.Mutex
	started   bool
	stopped   bool
	stopOnce  sync.Once
	abortOnce sync.Once
}

// New returns a pump that reads r and sends its records to receiver and
// the kernel's lost-record counts to lost (nil: they are only counted).
// It does nothing until Start.
func New(r Reader, receiver chan<- []byte, lost chan<- uint64, o Options) *Pump {
	return &Pump{r: r, receiver: receiver, lostChan: lost, o: o, abort: make(chan struct{}), done: make(chan struct{})}
}

// Lost is how many records were lost so far: dropped by the kernel (as
// the rings report it) and read but never handed over because Stop gave
// up on the receiver.
func (p *Pump) Lost() uint64 { return p.lost.Load() }

// Start starts the goroutine; again, or after Stop, it does nothing.
func (p *Pump) Start() {
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

func (p *Pump) aborted() bool {
	select {
	case <-p.abort:
		return true
	default:
		return false
	}
}

func (p *Pump) run(ctx context.Context) {
	defer close(p.done)
	if p.o.Done != nil {
		defer p.o.Done()
	}
	p.recs = make([]perfring.Record, pumpBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for ctx.Err() == nil {
		if !p.flush() {
			// The receiver is behind: drain the rings while there is
			// room, else wait for the receiver, draining every pumpPoll.
			if p.qBytes < queueBytes && p.readAvailable() > 0 {
				continue
			}
			p.sendWait(ctx, timer)
			continue
		}
		// Everything read was handed over. The first send woke the
		// receiver onto this thread's run queue: let it run here now,
		// rather than on another thread woken for it, before this
		// goroutine blocks in the next read.
		runtime.Gosched()
		if p.readBatch(ctx) != nil {
			break
		}
	}
	if p.aborted() {
		p.giveUp()
		return
	}
	// Stop: hand over what was read and what the rings still hold, as
	// long as the receiver keeps taking records.
	if p.o.DrainPrep != nil {
		p.o.DrainPrep()
	}
	for total := 0; p.o.DrainMax == 0 || total < p.o.DrainMax; {
		n := p.readAvailable()
		if n == 0 {
			break
		}
		total += n
	}
	p.deliverAll(timer)
	p.giveUp()
}

// readAvailable moves the records pending in the rings to the queue, one
// batch, and returns their size in bytes.
func (p *Pump) readAvailable() int {
	p.room()
	n, used, err := p.r.ReadAvailableBuf(p.recs, p.chunk, chunkMinRoom)
	if n == 0 || err != nil {
		return 0
	}
	p.chunk = p.chunk[used:used]
	return p.enqueue(p.recs[:n])
}

// readBatch waits for records and moves a batch of them to the queue.
// After a read that drained the rings it waits for the next wakeup (the
// perf rings' watermark or poll interval) before it reads again: the
// records then come in batches of about a watermark's worth, each woken
// receiver takes many, rather than a trickle of the few that arrived
// while the last batch was handed over.
func (p *Pump) readBatch(ctx context.Context) error {
	p.room()
	read := p.r.ReadBatchBuf
	if p.drained {
		read = p.r.WaitBatchBuf
		if p.o.Gather > 0 && p.lastBatch >= gatherMin {
			time.Sleep(p.o.Gather)
		}
	}
	n, used, err := read(ctx, p.recs, p.chunk, chunkMinRoom)
	if err != nil {
		return err
	}
	total := n
	// A batch that filled the chunk goes on in a new one, without
	// waiting, until the rings are drained or p.recs is full: one hand-off
	// to the receiver per wakeup. What was read is handed over even when
	// a later read fails; the error then ends the pump.
	for err == nil && n > 0 && total < len(p.recs) && cap(p.chunk)-used < chunkMinRoom {
		p.chunk = p.chunk[used:used]
		p.room()
		n, used, err = p.r.ReadAvailableBuf(p.recs[total:], p.chunk, chunkMinRoom)
		total += n
	}
	p.drained = total < len(p.recs) && cap(p.chunk)-used >= chunkMinRoom
	p.lastBatch = total
	p.chunk = p.chunk[used:used]
	p.enqueue(p.recs[:total])
	return err
}

// room starts a new chunk when the current one has less than chunkMinRoom
// bytes left.
func (p *Pump) room() {
	if cap(p.chunk) < chunkMinRoom {
		p.chunk = make([]byte, 0, chunkSize)
	}
}

// enqueue queues recs, whose samples the reader copied into the chunk (a
// record larger than the chunk's rest has its own allocation); it returns
// the bytes of ring space they took.
func (p *Pump) enqueue(recs []perfring.Record) int {
	if p.o.Order != nil {
		p.o.Order(recs)
	}
	if p.qHead > 0 && p.qHead >= len(p.q)/2 {
		n := copy(p.q, p.q[p.qHead:])
		clear(p.q[n:])
		p.q, p.qHead = p.q[:n], 0
	}
	size := 0
	for i := range recs {
		rec := &recs[i]
		if rec.LostSamples > 0 {
			p.q = append(p.q, item{lost: rec.LostSamples})
		} else {
			p.q = append(p.q, item{data: rec.RawSample})
			size += len(rec.RawSample)
		}
		rec.RawSample = nil // the chunk is the receiver's now
	}
	p.qBytes += size + len(recs)*queueItemCost
	return size + len(recs)*8
}

// pop removes the head of the queue, which was handed over.
func (p *Pump) pop() {
	it := &p.q[p.qHead]
	p.qBytes -= len(it.data) + queueItemCost
	if it.lost > 0 {
		p.lost.Add(it.lost)
	}
	*it = item{}
	p.qHead++
	if p.qHead == len(p.q) {
		p.q, p.qHead = p.q[:0], 0
	}
}

// flush hands over queued records while the channels have room, without
// blocking; it reports whether the queue is empty.
func (p *Pump) flush() bool {
	for p.qHead < len(p.q) {
		it := &p.q[p.qHead]
		if it.lost == 0 {
			// A run of records: hand them over in a tight loop and
			// drop them from the queue at once (the shorter the
			// burst, the less the receiver woken by its first record
			// contends with it for the channel).
			i, n, full := p.qHead, 0, false
			for ; i < len(p.q) && p.q[i].lost == 0; i++ {
				select {
				case p.receiver <- p.q[i].data:
					n += len(p.q[i].data)
					continue
				default:
				}
				full = true
				break
			}
			p.dropHead(i, n)
			if full {
				return false
			}
			continue
		}
		// A lost notice.
		if p.lostChan != nil {
			select {
			case p.lostChan <- it.lost:
			default:
				return false
			}
		}
		p.pop()
	}
	return true
}

// dropHead removes the records before index i, n bytes, which were handed
// over, from the queue.
func (p *Pump) dropHead(i, n int) {
	clear(p.q[p.qHead:i])
	p.qBytes -= n + (i-p.qHead)*queueItemCost
	p.qHead = i
	if p.qHead == len(p.q) {
		p.q, p.qHead = p.q[:0], 0
	}
}

// send blocks until the head of the queue is handed over (true) or one of
// stop or the timer fires (false).
func (p *Pump) send(stop <-chan struct{}, timer *time.Timer) bool {
	it := &p.q[p.qHead]
	if it.lost > 0 && p.lostChan == nil {
		p.pop()
		return true
	}
	if it.lost > 0 {
		select {
		case p.lostChan <- it.lost:
		case <-timer.C:
			return false
		case <-stop:
			return false
		}
	} else {
		select {
		case p.receiver <- it.data:
		case <-timer.C:
			return false
		case <-stop:
			return false
		}
	}
	p.pop()
	return true
}

// sendWait hands over queued records, blocking, until the queue is
// empty, pumpPoll passes (time to drain the rings again) or ctx is done.
func (p *Pump) sendWait(ctx context.Context, timer *time.Timer) {
	timer.Reset(pumpPoll)
	defer timer.Stop()
	for p.qHead < len(p.q) && p.send(ctx.Done(), timer) {
	}
}

// deliverAll hands over the whole queue, giving up once the receiver has
// taken nothing for StopGrace or the module is closing.
func (p *Pump) deliverAll(timer *time.Timer) {
	for p.qHead < len(p.q) {
		timer.Reset(StopGrace)
		ok := p.send(p.abort, timer)
		timer.Stop()
		if !ok {
			return
		}
	}
}

// giveUp counts the records still queued as lost and tells lostChan if it
// has room.
func (p *Pump) giveUp() {
	var n uint64
	for ; p.qHead < len(p.q); p.qHead++ {
		it := &p.q[p.qHead]
		if it.lost > 0 {
			n += it.lost
		} else {
			n++
		}
		*it = item{}
	}
	p.q, p.qHead, p.qBytes = nil, 0, 0
	if n == 0 {
		return
	}
	p.lost.Add(n)
	if p.lostChan != nil {
		select {
		case p.lostChan <- n:
		default:
		}
	}
}

// Stop ends the pump and closes its reader: gracefully (deliver what was
// read and what the rings hold while the receiver takes it, giving up
// once it took nothing for StopGrace) or not (give up on the receiver at
// once: the module is closing). Concurrent and repeated calls wait for the
// first to end; an abort cuts a graceful stop short.
func (p *Pump) Stop(graceful bool) {
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
	})
}
