package bcc

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

func TestTracepointsList(t *testing.T) {
	all, err := Tracepoints("syscalls:sys_enter_*")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := eventsDir()
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir + "/syscalls")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "sys_enter") {
			want = append(want, "syscalls:"+e.Name())
		}
	}
	if !slices.Equal(all, want) {
		t.Errorf("Tracepoints(syscalls:sys_enter_*): %d entries, tracefs has %d", len(all), len(want))
	}
	if !slices.Contains(all, "syscalls:sys_enter_getppid") {
		t.Errorf("Tracepoints(syscalls:sys_enter_*) lacks sys_enter_getppid")
	}
	one, err := Tracepoints(`syscalls:sys_enter_getppid$`)
	if err != nil || !slices.Equal(one, []string{"syscalls:sys_enter_getppid"}) {
		t.Errorf("Tracepoints(sys_enter_getppid$) = %v, %v", one, err)
	}
	// A pattern without a literal category walks every category.
	sched, err := Tracepoints(`.*:sched_process_(exec|exit)$`)
	if err != nil || !slices.Equal(sched, []string{"sched:sched_process_exec", "sched:sched_process_exit"}) {
		t.Errorf("Tracepoints(.*:sched_process_(exec|exit)$) = %v, %v", sched, err)
	}
	if _, err := Tracepoints("("); err == nil {
		t.Error("Tracepoints with a bad expression: no error")
	}
	if !TracepointExists("syscalls:sys_enter_getppid") || !TracepointExists("sched:sched_switch") {
		t.Error("TracepointExists says no to tracepoints tracefs lists")
	}
	for _, bad := range []string{"syscalls:sys_enter_gobpf_nope", "nope:nope", "syscalls", ":x", "syscalls:../../x", ""} {
		if TracepointExists(bad) {
			t.Errorf("TracepointExists(%q) = true", bad)
		}
	}
}

// TestMatchingTracepoints attaches one program to the entry tracepoints of
// every get* syscall (bcc's tp_re: a prefix; every syscall would do too, but
// each detach waits for an RCU grace period) and checks, per syscall number, exact counts of what a locked
// thread did.
func TestMatchingTracepoints(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := mustNewModule(t, traceSource, traceCflags()...)
	defer m.Close()
	fd := mustLoad(t)(m.LoadTracepoint("tp_sys_enter"))

	if _, err := m.AttachMatchingTracepoints("syscalls:sys_enter_gobpf_nothing", fd); !errors.Is(err, ErrNotFound) {
		t.Errorf("no match: err = %v, want ErrNotFound", err)
	}
	tps, err := m.AttachMatchingTracepoints("syscalls:sys_enter_get", fd)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Tracepoints("syscalls:sys_enter_get")
	if !slices.Equal(tps, want) || len(tps) < 10 || !slices.Contains(tps, "syscalls:sys_enter_getsid") {
		t.Fatalf("attached %d tracepoints, Tracepoints lists %d", len(tps), len(want))
	}
	if got := m.NumOpenTracepoints(); got != len(tps) {
		t.Errorf("NumOpenTracepoints = %d, want %d", got, len(tps))
	}
	byNr := func(nr int) uint64 { return lookupU64(t, m, "by_nr", uint32(nr)) }
	b1, b2, b3 := byNr(unix.SYS_GETPPID), byNr(unix.SYS_GETPGID), byNr(unix.SYS_GETSID)
	runtime.LockOSThread()
	getppids(40)
	for i := 0; i < 25; i++ {
		unix.Getpgid(0)
	}
	for i := 0; i < 7; i++ {
		unix.Getsid(0)
	}
	runtime.UnlockOSThread()
	if d1, d2, d3 := byNr(unix.SYS_GETPPID)-b1, byNr(unix.SYS_GETPGID)-b2, byNr(unix.SYS_GETSID)-b3; d1 != 40 || d2 != 25 || d3 != 7 {
		t.Errorf("getppid/getpgid/getsid entries seen = %d/%d/%d, want 40/25/7", d1, d2, d3)
	}
	// One of them detached: the others still count.
	if err := m.DetachTracepoint("syscalls:sys_enter_getpgid"); err != nil {
		t.Fatal(err)
	}
	b1, b2 = byNr(unix.SYS_GETPPID), byNr(unix.SYS_GETPGID)
	getppids(3)
	unix.Getpgid(0)
	if d1, d2 := byNr(unix.SYS_GETPPID)-b1, byNr(unix.SYS_GETPGID)-b2; d1 != 3 || d2 != 0 {
		t.Errorf("after detaching sys_enter_getpgid: getppid/getpgid = %d/%d, want 3/0", d1, d2)
	}
	if got := m.NumOpenTracepoints(); got != len(tps)-1 {
		t.Errorf("NumOpenTracepoints = %d, want %d", got, len(tps)-1)
	}
}

// TestPerfEventRaw attaches a program to a software page-fault event given
// as a full perf_event_attr, and counts exactly the faults of pages this
// test touches for the first time.
func TestPerfEventRaw(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	if n := unsafe.Sizeof(PerfEventAttr{}); n != 136 {
		t.Fatalf("PerfEventAttr is %d bytes, the kernel's perf_event_attr (VER8) 136", n)
	}
	m := mustNewModule(t, traceSource, traceCflags()...)
	defer m.Close()
	fd := mustLoad(t)(m.LoadPerfEvent("on_fault"))
	attr := &PerfEventAttr{
		Type:   PERF_TYPE_SOFTWARE,
		Config: PERF_COUNT_SW_PAGE_FAULTS,
		Sample: 1,
	}
	if err := m.AttachPerfEventRaw(&PerfEventAttr{Type: PERF_TYPE_SOFTWARE}, fd, -1, -1, -1, 0); err == nil {
		t.Error("an event that never samples was accepted")
	}
	if err := m.AttachPerfEventRaw(attr, fd, -1, -1, -1, 0); err != nil {
		t.Fatal(err)
	}
	if attr.Size != 0 {
		t.Error("AttachPerfEventRaw modified its attr")
	}
	const pages = 64
	touch := func() {
		ps := os.Getpagesize()
		mem, err := unix.Mmap(-1, 0, pages*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(mem)
		unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
		lo := uint64(uintptr(unsafe.Pointer(&mem[0])))
		var k [4]byte
		var v [8]byte
		tbl := NewTable(m.TableId("fault_range"), m)
		binary.NativeEndian.PutUint64(v[:], lo)
		if err := tbl.Set(k[:], v[:]); err != nil {
			t.Fatal(err)
		}
		binary.NativeEndian.PutUint32(k[:], 1)
		binary.NativeEndian.PutUint64(v[:], lo+uint64(len(mem)))
		if err := tbl.Set(k[:], v[:]); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < pages; i++ {
			mem[i*ps] = 1
			mem[i*ps+1] = 2 // the page is there now: no second fault
		}
	}
	touch()
	if got := lookupU64(t, m, "counts", tslotFault); got != pages {
		t.Errorf("page faults seen = %d, want %d (one per page touched)", got, pages)
	}
	if err := m.DetachPerfEvent(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS); err != nil {
		t.Fatal(err)
	}
	touch()
	if got := lookupU64(t, m, "counts", tslotFault); got != pages {
		t.Errorf("after DetachPerfEvent: page faults seen = %d, want still %d", got, pages)
	}
	// Attach again, on one CPU with the thread pinned there.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for c := 0; c < 1024 && cpu < 0; c++ {
		if set.IsSet(c) {
			cpu = c
		}
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &set)
	if err := m.AttachPerfEventRaw(attr, fd, -1, cpu, -1, 0); err != nil {
		t.Fatal(err)
	}
	touch()
	if got := lookupU64(t, m, "counts", tslotFault); got != 2*pages {
		t.Errorf("attached again on cpu %d: page faults seen = %d, want %d", cpu, got, 2*pages)
	}
}
