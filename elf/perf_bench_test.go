package elf

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/perfring"
	"github.com/iovisor/gobpf/internal/testutil"
)

// BenchmarkPerfMapChannel: b.N getppid calls of the generator process of
// the bcc benchmarks (testutil.StartGenerator, pinned to the last CPU),
// each a 28-byte record of tests/elf's tracepoint program in 64-page perf
// rings, received with the channel API (PollStart, a 4096-slot channel,
// a plain receive per record, as gobpf programs do) and, as the like-for-like
// reference in the same run, with the reader underneath read in batches
// (ReadBatch). Run with -benchtime=1000000x for stable numbers.
//
// Metrics: records/s (received, from the generator's start to the last
// record); cpu-ns/record (this process's CPU time per record received:
// what receiving costs, Go runtime and GC included; the generator is
// another process); lost (records not received: the kernel dropped them,
// ring full).
func BenchmarkPerfMapChannel(b *testing.B) {
	cleanPins(b)
	defer cleanPins(b)
	m := NewModule(testObject(b))
	params := map[string]SectionParams{"maps/events": {PerfRingBufferPageCount: 64}}
	for k, v := range testParams {
		params[k] = v
	}
	if err := m.Load(params); err != nil {
		b.Fatal(err)
	}
	defer m.CloseExt(unpinAll)
	setConfig := func(k, v uint32) {
		if err := m.UpdateElement(m.Map("config"), unsafe.Pointer(&k), unsafe.Pointer(&v), 0); err != nil {
			b.Fatal(err)
		}
	}
	setConfig(1, uint32(unix.SYS_GETPPID))
	bin := testutil.GeneratorBinary(b)
	if err := m.EnableTracepoint("tracepoint/syscalls/sys_enter_getppid"); err != nil {
		b.Fatal(err)
	}
	fd := m.maps["events"].fd

	// consume counts records until ctx ends, in p.
	type consumer func(ctx context.Context, p *progress)
	run := func(b *testing.B, open func() (consumer, func())) {
		consume, stop := open()
		g := testutil.StartGenerator(b, bin, b.N)
		setConfig(0, uint32(g.Pid()))
		ctx, cancel := context.WithCancel(context.Background())
		var p progress
		done := make(chan struct{})
		b.ResetTimer()
		cpu0 := testutil.CPUTime(unix.RUSAGE_SELF)
		start := time.Now()
		go func() {
			defer close(done)
			consume(ctx, &p)
		}()
		g.Go()
		g.Wait(b)
		// Wait for the records in flight: until all arrived, or none
		// arrived for 200 ms (the rest were dropped by the kernel).
		for prev, idle := p.received.Load(), 0; prev < uint64(b.N) && idle < 200; idle++ {
			time.Sleep(time.Millisecond)
			if n := p.received.Load(); n != prev {
				prev, idle = n, 0
			}
		}
		cpu := testutil.CPUTime(unix.RUSAGE_SELF) - cpu0
		b.StopTimer()
		cancel()
		<-done
		stop()
		got := p.received.Load()
		if got == 0 {
			b.Fatal("no record received")
		}
		b.ReportMetric(float64(got)/time.Unix(0, p.last.Load()).Sub(start).Seconds(), "records/s")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(got), "cpu-ns/record")
		b.ReportMetric(float64(uint64(b.N)-got), "lost")
	}

	b.Run("ReadBatch", func(b *testing.B) {
		run(b, func() (consumer, func()) {
			r, err := perfring.NewPerfReader(fd, perfring.PerfReaderOptions{PageCount: 64})
			if err != nil {
				b.Fatal(err)
			}
			return func(ctx context.Context, p *progress) {
				recs := make([]perfring.Record, 4096)
				for {
					n, err := r.ReadBatch(ctx, recs)
					if err != nil {
						return
					}
					k := 0
					for i := range recs[:n] {
						if recs[i].LostSamples == 0 && binary.LittleEndian.Uint32(recs[i].RawSample) != 0 {
							k++
						}
					}
					p.add(uint64(k))
				}
			}, func() { r.Close() }
		})
	})
	b.Run("PollStart", func(b *testing.B) {
		run(b, func() (consumer, func()) {
			recv := make(chan []byte, 4096)
			pm, err := InitPerfMap(m, "events", recv, nil)
			if err != nil {
				b.Fatal(err)
			}
			pm.PollStart()
			return func(ctx context.Context, p *progress) {
				stop := context.AfterFunc(ctx, func() { recv <- nil })
				defer stop()
				for {
					d := <-recv
					if d == nil {
						return
					}
					if binary.LittleEndian.Uint32(d) == 0 {
						continue
					}
					if len(recv) == 0 { // the last record always leaves it empty
						p.add(1)
					} else {
						p.received.Add(1)
					}
				}
			}, pm.PollStop
		})
	})
}

// progress is a consumer's count of records received and when the last
// arrived (UnixNano).
type progress struct {
	received atomic.Uint64
	last     atomic.Int64
}

// add counts n records and stamps the time.
func (p *progress) add(n uint64) {
	p.received.Add(n)
	p.last.Store(time.Now().UnixNano())
}
