package bcc

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

// The perf delivery benchmark: a separate generator process makes b.N
// getppid calls in a tight loop; a tracepoint program filtered to its pid
// submits one 64-byte record per call (perfSource, counting submissions in
// counts[0]); the benchmark process reads them.
//
// Reported metrics:
//   - records/s: records received / wall time from the generator's start
//     until the last record was read;
//   - cpu-ns/record: CPU time (user+system) of the whole benchmark process
//     over that interval, divided by the records: everything the consumer
//     side costs, Go runtime and GC included. The generator is another
//     process, and the BPF program's cost is charged to it;
//   - thread-cpu-ns/record: the reading goroutine's locked OS thread alone
//     (RUSAGE_THREAD);
//   - gen-records/s: the generator's own rate in this run;
//   - limit-records/s and ratio: the generator's rate with the program
//     attached and no reader (perf_submit then fails fast with ENOENT: the
//     upper bound for delivery), and records/s divided by it;
//   - lost: records the kernel dropped (ring full). The benchmark fails if
//     received+lost differs from the program's submission count.

// ringbufBenchSource is perfSource with a ring buffer of 512 KiB (as much
// as two CPUs' 64-page perf rings) instead of the perf event array.
const ringbufBenchSource = `
struct rec {
	u64 seq;
	u64 tgid;
	u64 w[6];
};

BPF_RINGBUF_OUTPUT(events, 128);
BPF_ARRAY(counts, u64, 2);
BPF_ARRAY(config, u32, 1);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
	int zero = 0, one = 1;
	u32 *tgid = config.lookup(&zero);
	u64 pid = bpf_get_current_pid_tgid() >> 32;
	if (!tgid || pid != *tgid)
		return 0;
	u64 *c = counts.lookup(&zero);
	if (!c)
		return 0;
	struct rec r = {};
	r.seq = *c;
	__sync_fetch_and_add(c, 1);
	r.tgid = pid;
	#pragma unroll
	for (int i = 0; i < 6; i++)
		r.w[i] = r.seq * 7 + i;
	if (events.ringbuf_output(&r, sizeof(r), 0) < 0) {
		u64 *f = counts.lookup(&one);
		if (f)
			__sync_fetch_and_add(f, 1);
	}
	return 0;
}
`

var (
	readerBenchMu   sync.Mutex
	readerBenchMods = map[string]*Module{}
)

// readerBenchModule compiles, loads and attaches src (perfSource or
// ringbufBenchSource) once; the module lives until the test process exits.
// Only one bench module is attached at a time: the previous one is closed.
func readerBenchModule(b *testing.B, src string) *Module {
	b.Helper()
	readerBenchMu.Lock()
	defer readerBenchMu.Unlock()
	if m := readerBenchMods[src]; m != nil {
		return m
	}
	for k, m := range readerBenchMods {
		m.Close()
		delete(readerBenchMods, k)
	}
	m, err := NewModuleWithError(src, nil)
	if err != nil {
		b.Fatal(err)
	}
	fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
	if err == nil {
		err = m.AttachTracepoint("syscalls:sys_enter_getppid", fd)
	}
	if err != nil {
		m.Close()
		b.Fatal(err)
	}
	readerBenchMods[src] = m
	return m
}

func resetCounts(b *testing.B, m *Module, tgid int) {
	b.Helper()
	zero := make([]byte, 8)
	for k := uint32(0); k < 2; k++ {
		key := binary.NativeEndian.AppendUint32(nil, k)
		if err := table(m, "counts").Set(key, zero); err != nil {
			b.Fatal(err)
		}
	}
	if err := setU32(m, "config", 0, uint32(tgid)); err != nil {
		b.Fatal(err)
	}
}

func counter(b *testing.B, m *Module, k uint32) uint64 {
	b.Helper()
	v, err := table(m, "counts").Get(binary.NativeEndian.AppendUint32(nil, k))
	if err != nil {
		b.Fatal(err)
	}
	return binary.NativeEndian.Uint64(v)
}

// limitRate measures the generator with the program attached and nobody
// reading.
func limitRate(b *testing.B, m *Module, bin string, n int) float64 {
	g := testutil.StartGenerator(b, bin, n)
	resetCounts(b, m, g.Pid())
	g.Go()
	d := g.Wait(b)
	if got := counter(b, m, 0); got != uint64(n) {
		b.Fatalf("program saw %d of %d calls", got, n)
	}
	return float64(n) / d.Seconds()
}

// consumer reads n records (or gives up after idle), on a locked thread,
// and reports what it got and its thread's CPU time.
type consumeResult struct {
	got, lost uint64
	seqSum    uint64
	threadCPU time.Duration
	end       time.Time // when the last record was read
	err       error
}

// A consumeFunc reads until it has n records (or ctx ends), storing its
// count of records received so far in progress.
type consumeFunc func(ctx context.Context, n uint64, progress *atomic.Uint64) consumeResult

// runDelivery measures the limit, then opens a reader with open and
// measures delivery through it.
func runDelivery(b *testing.B, src string, open func(m *Module) (consumeFunc, func() uint64)) {
	m := readerBenchModule(b, src)
	bin := testutil.GeneratorBinary(b)
	n := b.N
	limit := limitRate(b, m, bin, max(n, 200000))
	consume, cleanup := open(m)

	g := testutil.StartGenerator(b, bin, n)
	resetCounts(b, m, g.Pid())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resc := make(chan consumeResult, 1)
	b.ResetTimer()
	cpu0 := testutil.CPUTime(unix.RUSAGE_SELF)
	start := time.Now()
	var progress atomic.Uint64
	go func() { resc <- consume(ctx, uint64(n), &progress) }()
	g.Go()
	genTime := g.Wait(b)
	// The kernel reports a ring's losses only with its next record, so
	// the consumer may never see the last ones: once the generator is
	// done, wait for the records the program did submit (its count of
	// refused submissions is exact), then stop the consumer.
	want := uint64(n) - counter(b, m, 1)
	deadline := time.Now().Add(5 * time.Second)
	var res consumeResult
	for res.end.IsZero() {
		select {
		case res = <-resc:
			continue
		case <-time.After(time.Millisecond):
		}
		if progress.Load() >= want || time.Now().After(deadline) {
			cancel()
			res = <-resc
		}
	}
	cpu := testutil.CPUTime(unix.RUSAGE_SELF) - cpu0
	b.StopTimer()
	if l := cleanup(); l > res.lost {
		res.lost = l // a channel API's Lost()
	}
	if res.err != nil && res.err != context.Canceled {
		b.Fatal(res.err)
	}
	submitted := counter(b, m, 0)
	refused := counter(b, m, 1)
	if submitted != uint64(n) {
		b.Fatalf("program saw %d of %d calls", submitted, n)
	}
	if res.got+refused != submitted || res.lost > refused {
		b.Fatalf("received %d + refused %d != submitted %d (lost notices %d)", res.got, refused, submitted, res.lost)
	}
	if refused == 0 && res.seqSum != uint64(n)*uint64(n-1)/2 {
		b.Fatalf("record contents: sum of seqs %d, want %d", res.seqSum, uint64(n)*uint64(n-1)/2)
	}
	wall := res.end.Sub(start)
	rate := float64(res.got) / wall.Seconds()
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/record")
	b.ReportMetric(float64(res.threadCPU.Nanoseconds())/float64(n), "thread-cpu-ns/record")
	b.ReportMetric(float64(refused), "lost")
	b.ReportMetric(float64(n)/genTime.Seconds(), "gen-records/s")
	b.ReportMetric(limit, "limit-records/s")
	b.ReportMetric(rate/limit, "ratio")
}

func threadCPU() time.Duration { return testutil.CPUTime(unix.RUSAGE_THREAD) }

// readerConsumer reads with ReadBatch (batch > 1) or ReadInto (batch 1).
//
// With realtime, the reading thread runs under SCHED_FIFO, as an agent that
// must not lose events runs its reader: the woken reader then runs at once
// instead of waiting its turn behind other threads for a few milliseconds,
// longer than a 64-page ring lasts at 1.5 M records/s.
func readerConsumer(r *PerfReader, batch int, realtime bool) consumeFunc {
	return func(ctx context.Context, n uint64, progress *atomic.Uint64) (res consumeResult) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if realtime {
			attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 10}
			if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
				res.err = fmt.Errorf("SCHED_FIFO for the reader thread: %w", err)
				return
			}
			// The thread is locked: leave it to the runtime to discard
			// rather than handing a real-time thread to other goroutines.
			defer runtime.LockOSThread()
		}
		t0 := threadCPU()
		res.end = time.Now()
		defer func() { res.threadCPU = threadCPU() - t0 }()
		recs := make([]Record, batch)
		for res.got+res.lost < n {
			k := 1
			var err error
			if batch == 1 {
				err = r.ReadInto(ctx, &recs[0])
			} else {
				k, err = r.ReadBatch(ctx, recs)
			}
			if err != nil {
				res.err = err
				return
			}
			for i := range recs[:k] {
				if l := recs[i].LostSamples; l > 0 {
					res.lost += l
					continue
				}
				res.seqSum += binary.NativeEndian.Uint64(recs[i].RawSample)
				res.got++
			}
			res.end = time.Now()
			progress.Store(res.got)
		}
		return
	}
}

// channelConsumer receives from a channel API as gobpf programs do: with
// sel, a select on the data channel and a done channel per record; else a
// plain receive per record, as gobpf's examples do (a nil record sent by
// the benchmark when ctx ends stops it).
func channelConsumer(recv chan []byte, sel bool) consumeFunc {
	return func(ctx context.Context, n uint64, progress *atomic.Uint64) (res consumeResult) {
		res.end = time.Now()
		done := ctx.Done()
		if !sel {
			stop := context.AfterFunc(ctx, func() { recv <- nil })
			defer stop()
		}
		for res.got < n {
			var d []byte
			if sel {
				select {
				case d = <-recv:
				case <-done:
					res.err = ctx.Err()
					return
				}
			} else if d = <-recv; d == nil {
				res.err = ctx.Err()
				return
			}
			res.seqSum += binary.NativeEndian.Uint64(d)
			res.got++
			progress.Store(res.got)
			if len(recv) == 0 { // the last record always leaves it empty
				res.end = time.Now()
			}
		}
		return
	}
}

// BenchmarkPerfDelivery: b.N records through 64-page perf rings (and a
// 512 KiB ring buffer); run with -benchtime=3000000x for stable numbers
// (tests/bench does).
func BenchmarkPerfDelivery(b *testing.B) {
	reader := func(opts PerfReaderOptions, batch int, realtime bool) func(m *Module) (consumeFunc, func() uint64) {
		return func(m *Module) (consumeFunc, func() uint64) {
			r, err := NewPerfReader(table(m, "events"), opts)
			if err != nil {
				b.Fatal(err)
			}
			return readerConsumer(r, batch, realtime), func() uint64 { r.Close(); return 0 }
		}
	}
	// The reader thread under SCHED_FIFO (see readerConsumer).
	b.Run("ReadBatch", func(b *testing.B) {
		runDelivery(b, perfSource, reader(PerfReaderOptions{PageCount: 64}, 256, true))
	})
	// The same under the default scheduler: now and then the woken reader
	// waits a few milliseconds to run, and a 64-page ring overflows.
	b.Run("ReadBatchDefaultSched", func(b *testing.B) {
		runDelivery(b, perfSource, reader(PerfReaderOptions{PageCount: 64}, 256, false))
	})
	// Default scheduler, 256 pages per CPU: room for those stalls.
	b.Run("ReadBatchPages256", func(b *testing.B) {
		runDelivery(b, perfSource, reader(PerfReaderOptions{PageCount: 256}, 256, false))
	})
	b.Run("ReadInto", func(b *testing.B) {
		runDelivery(b, perfSource, reader(PerfReaderOptions{PageCount: 64}, 1, false))
	})
	// The classic scheme: a wakeup for every record, one record per read.
	b.Run("NaiveWakeupEach", func(b *testing.B) {
		runDelivery(b, perfSource, reader(PerfReaderOptions{PageCount: 64, Watermark: 1, PollInterval: -1}, 1, false))
	})
	// gobpf's channel API, 64 pages per CPU, default scheduler, as gobpf
	// programs use it (no lost channel; losses from Lost()): a plain
	// receive per record, or a select with a done channel.
	perfMap := func(sel bool) func(m *Module) (consumeFunc, func() uint64) {
		return func(m *Module) (consumeFunc, func() uint64) {
			recv := make(chan []byte, 4096)
			pm, err := InitPerfMapWithPageCnt(table(m, "events"), recv, nil, 64)
			if err != nil {
				b.Fatal(err)
			}
			pm.Start()
			return channelConsumer(recv, sel), func() uint64 {
				go func() { // drain while Stop delivers leftovers
					for range recv {
					}
				}()
				pm.Stop()
				close(recv)
				return pm.Lost()
			}
		}
	}
	// The like-for-like reference for the channel APIs: what a program
	// writes by hand to get a channel from the low-level reader, a
	// goroutine that reads batches with ReadBatch and sends a copy of
	// each record on a chan []byte (4096 slots), received as above.
	b.Run("ReadBatchToChannel", func(b *testing.B) {
		runDelivery(b, perfSource, func(m *Module) (consumeFunc, func() uint64) {
			r, err := NewPerfReader(table(m, "events"), PerfReaderOptions{PageCount: 64})
			if err != nil {
				b.Fatal(err)
			}
			return forwardToChannel(r.ReadBatch, r.Close)
		})
	})
	b.Run("PerfMapChannel", func(b *testing.B) { runDelivery(b, perfSource, perfMap(false)) })
	b.Run("PerfMapChannelSelect", func(b *testing.B) { runDelivery(b, perfSource, perfMap(true)) })
	ringReader := func(m *Module) (consumeFunc, func() uint64) {
		drainRing(b, m)
		r, err := NewRingBufReader(table(m, "events"))
		if err != nil {
			b.Fatal(err)
		}
		return ringConsumer(r), func() uint64 { r.Close(); return 0 }
	}
	// The ring buffer (512 KiB) read with ReadBatch, default scheduler.
	b.Run("RingBufReadBatch", func(b *testing.B) {
		runDelivery(b, ringbufBenchSource, ringReader)
	})
	// The ring buffer read with ReadBatch and forwarded to a channel by
	// hand (see ReadBatchToChannel).
	b.Run("RingBufReadBatchToChannel", func(b *testing.B) {
		runDelivery(b, ringbufBenchSource, func(m *Module) (consumeFunc, func() uint64) {
			drainRing(b, m)
			r, err := NewRingBufReader(table(m, "events"))
			if err != nil {
				b.Fatal(err)
			}
			return forwardToChannel(r.ReadBatch, r.Close)
		})
	})
	// The ring buffer's channel API.
	b.Run("RingBufChannel", func(b *testing.B) {
		runDelivery(b, ringbufBenchSource, func(m *Module) (consumeFunc, func() uint64) {
			drainRing(b, m)
			recv := make(chan []byte, 4096)
			rb, err := InitRingBuf(table(m, "events"), recv)
			if err != nil {
				b.Fatal(err)
			}
			rb.Start()
			return channelConsumer(recv, false), func() uint64 {
				go func() {
					for range recv {
					}
				}()
				rb.Stop()
				close(recv)
				return rb.Lost()
			}
		})
	})
}

// forwardToChannel starts a goroutine that reads batches with readBatch
// and sends a copy of each record on a channel, and returns the consumer
// of that channel and the cleanup that stops the goroutine, closes the
// reader and returns the records the kernel reported lost.
func forwardToChannel(readBatch func(context.Context, []Record) (int, error), closeReader func() error) (consumeFunc, func() uint64) {
	recv := make(chan []byte, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	var lost atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		recs := make([]Record, 256)
		for {
			k, err := readBatch(ctx, recs)
			if err != nil {
				return
			}
			for i := range recs[:k] {
				if l := recs[i].LostSamples; l > 0 {
					lost.Add(l)
					continue
				}
				d := make([]byte, len(recs[i].RawSample))
				copy(d, recs[i].RawSample)
				select {
				case recv <- d:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return channelConsumer(recv, false), func() uint64 {
		cancel()
		<-done
		closeReader()
		return lost.Load()
	}
}

// drainRing empties the ring buffer of what the limit run left in it.
func drainRing(b *testing.B, m *Module) {
	r, err := NewRingBufReader(table(m, "events"))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	recs := make([]Record, 256)
	for {
		k, err := r.ReadAvailable(recs)
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			return
		}
	}
}

// ringConsumer reads a ring buffer with ReadBatch, as readerConsumer does
// a perf reader under the default scheduler.
func ringConsumer(r *RingBufReader) consumeFunc {
	return func(ctx context.Context, n uint64, progress *atomic.Uint64) (res consumeResult) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		t0 := threadCPU()
		res.end = time.Now()
		defer func() { res.threadCPU = threadCPU() - t0 }()
		recs := make([]Record, 256)
		for res.got < n {
			k, err := r.ReadBatch(ctx, recs)
			if err != nil {
				res.err = err
				return
			}
			for i := range recs[:k] {
				res.seqSum += binary.NativeEndian.Uint64(recs[i].RawSample)
				res.got++
			}
			res.end = time.Now()
			progress.Store(res.got)
		}
		return
	}
}

// BenchmarkModuleLoadAttach: compile a small module with libbcc, load its
// tracepoint program, attach it, and close everything.
func BenchmarkModuleLoadAttach(b *testing.B) {
	defer testutil.CheckLeaks(b)()
	src := `
BPF_ARRAY(counts, u64, 1);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
	int zero = 0;
	u64 *c = counts.lookup(&zero);
	if (c)
		__sync_fetch_and_add(c, 1);
	return 0;
}
`
	for i := 0; i < b.N; i++ {
		m, err := NewModuleWithError(src, nil)
		if err != nil {
			b.Fatal(err)
		}
		fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
		if err != nil {
			b.Fatal(err)
		}
		if err := m.AttachTracepoint("syscalls:sys_enter_getppid", fd); err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}
