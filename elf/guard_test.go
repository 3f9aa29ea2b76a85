package elf

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
)

const raceMapSrc = `struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, __u32); __type(value, __u64); } m SEC(".maps");
`

// TestCloseRacesMapUpdates is issue 8 fault 1: goroutines updating a map
// while the module is closed and another module (whose map gets the freed
// fd number) is loaded. No update may land in the other module's map, and
// every update that fails must fail with ErrClosed.
func TestCloseRacesMapUpdates(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	obj := compileSnippet(t, raceMapSrc)
	const writers = 8
	rounds := 1000
	if testing.Short() {
		rounds = 50
	}
	var landed, otherErrs, closedErrs, updates int
	// Up to rounds rounds, at least 100, within about 10 s (slow VM lanes).
	start, done := time.Now(), 0
	for r := 0; r < rounds && (r < 100 || time.Since(start) < 10*time.Second); r++ {
		done++
		a := NewModule(obj)
		if err := a.Load(nil); err != nil {
			t.Fatal(err)
		}
		am := a.Map("m")
		var wg, running sync.WaitGroup
		var mu sync.Mutex
		running.Add(writers)
		start := make(chan struct{})
		for g := 0; g < writers; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				<-start
				k, v := uint32(g), uint64(0xbad0000+r)
				n := 0
				for {
					err := a.UpdateElement(am, unsafe.Pointer(&k), unsafe.Pointer(&v), 0)
					if err == nil {
						if n++; n == 1 {
							running.Done() // Close only once all write
						}
						runtime.Gosched() // let all writers start soon
						continue
					}
					if n == 0 {
						running.Done()
					}
					mu.Lock()
					updates += n
					if errors.Is(err, ErrClosed) {
						closedErrs++
					} else {
						otherErrs++
						if otherErrs <= 3 {
							t.Errorf("round %d: update failed with %v, want ErrClosed", r, err)
						}
					}
					mu.Unlock()
					return
				}
			}(g)
		}
		close(start)
		running.Wait()
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		b := NewModule(obj)
		if err := b.Load(nil); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		bm := b.Map("m")
		for g := 0; g < writers; g++ {
			k := uint32(g)
			var v uint64
			err := b.LookupElement(bm, unsafe.Pointer(&k), unsafe.Pointer(&v))
			if err == nil {
				landed++
				t.Errorf("round %d: module A's update (key %d, value %#x) landed in module B's map", r, k, v)
			} else if !errors.Is(err, unix.ENOENT) {
				t.Fatalf("lookup in B: %v", err)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			break
		}
	}
	t.Logf("%d rounds: %d updates before Close, %d ErrClosed, %d other errors, %d values in the wrong map",
		done, updates, closedErrs, otherErrs, landed)
	if closedErrs != done*writers {
		t.Errorf("%d of %d writers ended with ErrClosed", closedErrs, done*writers)
	}
}

// TestUseAfterClose checks the siblings of fault 1: every entry point that
// uses a map, program or perf event fd returns ErrClosed once Close began,
// and the Fd getters return -1.
func TestUseAfterClose(t *testing.T) {
	cleanPins(t)
	defer cleanPins(t)
	defer testutil.CheckLeaks(t)()
	m := loadTestModule(t)
	cfg := m.Map("config")
	sf := m.SocketFilter("socket/drop_d")
	up := m.Uprobe("uprobe/target_func")
	cg := m.CgroupProgram("cgroup/skb")
	xdp := m.XDPProgram("xdp/udp_drop")
	tp := m.TracepointProgram("tracepoint/syscalls/sys_enter_getppid")
	if cfg.Fd() < 0 || sf.Fd() < 0 || tp.Fd() < 0 {
		t.Fatal("fds not open after Load")
	}
	if err := m.CloseExt(unpinAll); err != nil {
		t.Fatal(err)
	}
	if cfg.Fd() != -1 || sf.Fd() != -1 || up.Fd() != -1 || cg.Fd() != -1 || xdp.Fd() != -1 || tp.Fd() != -1 {
		t.Error("an Fd getter returned an fd after Close")
	}
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	k, v := uint32(0), uint32(1)
	next := uint32(0)
	_, lnErr := m.LookupNextElement(cfg, nil, unsafe.Pointer(&next), unsafe.Pointer(&v))
	pm, pmErr := InitPerfMap(m, "events", make(chan []byte), nil)
	if pm != nil {
		t.Error("InitPerfMap returned a PerfMap after Close")
	}
	for name, err := range map[string]error{
		"UpdateElement":          m.UpdateElement(cfg, unsafe.Pointer(&k), unsafe.Pointer(&v), 0),
		"LookupElement":          m.LookupElement(cfg, unsafe.Pointer(&k), unsafe.Pointer(&v)),
		"DeleteElement":          m.DeleteElement(cfg, unsafe.Pointer(&k)),
		"LookupAndDeleteElement": m.LookupAndDeleteElement(cfg, unsafe.Pointer(&v)),
		"LookupNextElement":      lnErr,
		"AttachSocketFilter":     AttachSocketFilter(sf, s),
		"AttachUprobe":           AttachUprobe(up, "/proc/self/exe", 0),
		"AttachCgroupProgram":    AttachCgroupProgram(cg, "/sys/fs/cgroup", IngressType),
		"DetachCgroupProgram":    DetachCgroupProgram(cg, "/sys/fs/cgroup", IngressType),
		"XDP Attach":             xdp.Attach("lo"),
		"EnableTracepoint":       m.EnableTracepoint(tp.Name),
		"EnableRawTracepoint":    m.EnableRawTracepoint("raw_tracepoint/sys_enter"),
		"EnableKprobe":           m.EnableKprobe("kprobe/do_sys_openat2", 0),
		"EnableKprobes":          m.EnableKprobes(0),
		"InitPerfMap":            pmErr,
		"PerfMapStop":            m.PerfMapStop("events"),
		"Load":                   m.Load(nil),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// TestCloseRacesAttach races socket filter attachment, Fd getters and map
// iteration against Close (run with -race): each call either works on the
// module's own program or returns ErrClosed.
func TestCloseRacesAttach(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	obj := compileSnippet(t, raceMapSrc+`SEC("socket/x") int f(void *ctx) { __u32 k = 0; return bpf_map_lookup_elem(&m, &k) != 0; }
`)
	for r := 0; r < 50; r++ {
		a := NewModule(obj)
		if err := a.Load(nil); err != nil {
			t.Fatal(err)
		}
		sf := a.SocketFilter("socket/x")
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Error(err)
					return
				}
				defer unix.Close(s)
				for {
					for mp := range a.IterMaps() {
						mp.Fd()
					}
					sf.Fd()
					if err := AttachSocketFilter(sf, s); err != nil {
						if !errors.Is(err, ErrClosed) {
							t.Errorf("AttachSocketFilter: %v, want ErrClosed", err)
						}
						return
					}
				}
			}()
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}

// TestNilModule: methods on a nil *Module return errors, not panics.
func TestNilModule(t *testing.T) {
	var m *Module
	for name, err := range map[string]error{
		"Load":             m.Load(nil),
		"EnableKprobe":     m.EnableKprobe("kprobe/x", 0),
		"EnableTracepoint": m.EnableTracepoint("tracepoint/a/b"),
		"PerfMapStop":      m.PerfMapStop("events"),
		"UpdateElement":    m.UpdateElement(m.Map("m"), nil, nil, 0),
		"Close":            m.Close(),
	} {
		if name == "Close" {
			if err != nil {
				t.Errorf("Close of a nil module: %v", err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s on a nil module succeeded", name)
		}
	}
	if m.Map("m") != nil || m.SocketFilter("s") != nil {
		t.Error("getters on a nil module returned something")
	}
	for range m.IterMaps() {
		t.Error("IterMaps of a nil module emitted a map")
	}
}

// BenchmarkGuardedUpdate measures what the fd guard costs a map update:
// Module.UpdateElement against the bare bpf(2) call on the same map,
// interleaved in chunks of 1,000 calls so that both see the same machine
// load. It reports both costs and their ratio.
func BenchmarkGuardedUpdate(b *testing.B) {
	m := NewModule(compileSnippet(b, raceMapSrc))
	if err := m.Load(nil); err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	mp := m.Map("m")
	fd := mp.Fd()
	k, v := uint32(1), uint64(2)
	var bare, guarded time.Duration
	const chunk = 1000
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		t0 := time.Now()
		for i := 0; i < chunk; i++ {
			if err := bpfsys.MapUpdateElem(fd, unsafe.Pointer(&k), unsafe.Pointer(&v), 0); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for i := 0; i < chunk; i++ {
			if err := m.UpdateElement(mp, unsafe.Pointer(&k), unsafe.Pointer(&v), 0); err != nil {
				b.Fatal(err)
			}
		}
		guarded += time.Since(t1)
		bare += t1.Sub(t0)
	}
	n := float64((b.N + chunk - 1) / chunk * chunk)
	b.ReportMetric(float64(bare.Nanoseconds())/n, "bare-ns/update")
	b.ReportMetric(float64(guarded.Nanoseconds())/n, "guarded-ns/update")
	b.ReportMetric(float64(guarded)/float64(bare), "ratio")
}

// BenchmarkGuardAcquire is the guard alone: taking and releasing a map's
// fd (no system call), from all CPUs at once.
func BenchmarkGuardAcquire(b *testing.B) {
	m := NewModule(compileSnippet(b, raceMapSrc))
	if err := m.Load(nil); err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	mp := m.Map("m")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := mp.acquire(); err != nil {
				b.Fatal(err)
			}
			mp.release()
		}
	})
}
