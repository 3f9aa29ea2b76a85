package bcc

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

// Slots of the counts array of traceSource.
const (
	tslotUprobe = iota
	tslotUretprobe
	tslotTracepoint
	tslotRawTP
	tslotKprobe
	tslotKprobe2
	tslotKretprobe
	tslotFault
	tslotKretValue // kretprobes: returns of our process group id (getpgid(0))
)

const traceSource = `
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf_perf_event.h>

BPF_ARRAY(counts, u64, 16);
BPF_ARRAY(by_nr, u64, 1024);
BPF_ARRAY(fault_range, u64, 2);

static inline void add(int slot) {
	u64 *p = counts.lookup(&slot);
	if (p)
		__sync_fetch_and_add(p, 1);
}

static inline bool mine(void) {
	return (bpf_get_current_pid_tgid() >> 32) == TGID;
}

int up_add(struct pt_regs *ctx) { add(SLOT_UP); return 0; }
int up_add_ret(struct pt_regs *ctx) { add(SLOT_URET); return 0; }

struct sys_enter_args {
	u64 common;
	int nr;
};

int tp_getppid(struct sys_enter_args *args) {
	if (mine())
		add(SLOT_TP);
	return 0;
}

// For every syscalls:sys_enter_* tracepoint: calls of this process by number.
int tp_sys_enter(struct sys_enter_args *args) {
	if (!mine())
		return 0;
	u32 nr = args->nr;
	u64 *p = by_nr.lookup(&nr);
	if (p)
		__sync_fetch_and_add(p, 1);
	return 0;
}

RAW_TRACEPOINT_PROBE(sys_enter) {
	if (mine() && ctx->args[1] == NR_GETPPID)
		add(SLOT_RAWTP);
	return 0;
}

int kp(struct pt_regs *ctx) { if (mine()) add(SLOT_KP); return 0; }
int kp2(struct pt_regs *ctx) { if (mine()) add(SLOT_KP2); return 0; }
int kret(struct pt_regs *ctx) {
	if (!mine())
		return 0;
	add(SLOT_KRET);
	if (PT_REGS_RC(ctx) == PGID)
		add(SLOT_KRETVAL);
	return 0;
}

// Page faults of this process inside [fault_range[0], fault_range[1]).
int on_fault(struct bpf_perf_event_data *ctx) {
	int lo = 0, hi = 1;
	u64 *l = fault_range.lookup(&lo), *h = fault_range.lookup(&hi);
	if (!mine() || !l || !h)
		return 0;
	if (ctx->addr >= *l && ctx->addr < *h)
		add(SLOT_FAULT);
	return 0;
}
`

func traceCflags() []string {
	return []string{
		fmt.Sprintf("-DTGID=%d", os.Getpid()),
		fmt.Sprintf("-DPGID=%d", pgid()),
		fmt.Sprintf("-DNR_GETPPID=%d", unix.SYS_GETPPID),
		fmt.Sprintf("-DSLOT_UP=%d", tslotUprobe),
		fmt.Sprintf("-DSLOT_URET=%d", tslotUretprobe),
		fmt.Sprintf("-DSLOT_TP=%d", tslotTracepoint),
		fmt.Sprintf("-DSLOT_RAWTP=%d", tslotRawTP),
		fmt.Sprintf("-DSLOT_KP=%d", tslotKprobe),
		fmt.Sprintf("-DSLOT_KP2=%d", tslotKprobe2),
		fmt.Sprintf("-DSLOT_KRET=%d", tslotKretprobe),
		fmt.Sprintf("-DSLOT_KRETVAL=%d", tslotKretValue),
		fmt.Sprintf("-DSLOT_FAULT=%d", tslotFault),
	}
}

// mustLoad returns a function that passes a Load* result's fd through or
// fails the test: mustLoad(t)(m.LoadKprobe("fn")).
func mustLoad(t testing.TB) func(int, error) int {
	return func(fd int, err error) int {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
}

func pgid() int {
	g, _ := unix.Getpgid(0)
	return g
}

// getpgids calls getpgid(0) n times. Its syscall function is a real one
// (not an alias, as those of argument-less syscalls such as getppid are):
// ftrace lists it and BTF has it.
func getpgids(n int) {
	for i := 0; i < n; i++ {
		unix.Getpgid(0)
	}
}

func getppids(n int) {
	for i := 0; i < n; i++ {
		unix.Getppid()
	}
}

// TestDetachOneAtATime attaches uprobes, a tracepoint, a raw tracepoint and
// a perf event, detaches them one by one and checks that each stops firing
// while the others go on, that the module stays usable and that a probe
// can be attached again.
func TestDetachOneAtATime(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := mustNewModule(t, traceSource, traceCflags()...)
	defer m.Close()
	count := func(slot int) uint64 { return lookupU64(t, m, "counts", uint32(slot)) }
	bin := testutil.BuildC(t, uprobeTargetSource, "-fno-builtin")

	up := mustLoad(t)(m.LoadUprobe("up_add"))
	uret := mustLoad(t)(m.LoadUprobe("up_add_ret"))
	tp := mustLoad(t)(m.LoadTracepoint("tp_getppid"))
	raw := mustLoad(t)(m.LoadRawTracepoint("raw_tracepoint__sys_enter"))

	if err := m.AttachUprobe(bin, "gobpf_add", up, -1); err != nil {
		t.Fatal(err)
	}
	if err := m.AttachUretprobe(bin, "gobpf_add", uret, -1); err != nil {
		t.Fatal(err)
	}
	if err := m.AttachTracepoint("syscalls:sys_enter_getppid", tp); err != nil {
		t.Fatal(err)
	}
	if err := m.AttachRawTracepoint("sys_enter", raw); err != nil {
		t.Fatal(err)
	}
	if got := m.NumOpenUprobes(); got != 2 {
		t.Errorf("NumOpenUprobes = %d, want 2", got)
	}
	if got := m.NumOpenTracepoints(); got != 1 {
		t.Errorf("NumOpenTracepoints = %d, want 1", got)
	}
	if got := m.NumOpenKprobes(); got != 0 {
		t.Errorf("NumOpenKprobes = %d, want 0", got)
	}

	testutil.Run(t, bin, "10")
	getppids(20)
	want := map[int]uint64{tslotUprobe: 10, tslotUretprobe: 10, tslotTracepoint: 20, tslotRawTP: 20}
	check := func(step string) {
		t.Helper()
		for slot, w := range want {
			if got := count(slot); got != w {
				t.Errorf("%s: slot %d = %d, want %d", step, slot, got, w)
			}
		}
	}
	check("all attached")

	// The uretprobe goes; the uprobe stays.
	if err := m.DetachUretprobe(bin, "gobpf_add", -1); err != nil {
		t.Fatal(err)
	}
	if err := m.DetachUretprobe(bin, "gobpf_add", -1); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DetachUretprobe: err = %v, want ErrNotFound", err)
	}
	testutil.Run(t, bin, "7")
	want[tslotUprobe] += 7
	check("uretprobe detached")
	if got := m.NumOpenUprobes(); got != 1 {
		t.Errorf("NumOpenUprobes = %d, want 1", got)
	}

	// The tracepoint goes; the raw tracepoint stays.
	if err := m.DetachTracepoint("syscalls:sys_enter_getppid"); err != nil {
		t.Fatal(err)
	}
	getppids(30)
	want[tslotRawTP] += 30
	check("tracepoint detached")
	if got := m.NumOpenTracepoints(); got != 0 {
		t.Errorf("NumOpenTracepoints = %d, want 0", got)
	}
	if err := m.DetachRawTracepoint("sys_enter"); err != nil {
		t.Fatal(err)
	}
	getppids(5)
	check("raw tracepoint detached")
	if err := m.DetachUprobe(bin, "gobpf_add", -1); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, bin, "3")
	check("everything detached")
	if got := m.NumOpenUprobes(); got != 0 {
		t.Errorf("NumOpenUprobes = %d, want 0", got)
	}

	// Attach again: the programs are still loaded and work.
	if err := m.AttachTracepoint("syscalls:sys_enter_getppid", tp); err != nil {
		t.Fatal(err)
	}
	if err := m.AttachUretprobe(bin, "gobpf_add", uret, -1); err != nil {
		t.Fatal(err)
	}
	getppids(11)
	testutil.Run(t, bin, "4")
	want[tslotTracepoint] += 11
	want[tslotUretprobe] += 4
	check("attached again")

	for _, err := range []error{
		m.DetachKprobe("vfs_read"), m.DetachKretprobe("vfs_read"), m.DetachPerfEvent(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK),
		m.DetachKfunc("vfs_read"), m.DetachLSM("file_open"), m.DetachRawTracepoint("sys_exit"),
		m.DetachUprobe(bin, "gobpf_mul", -1),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("detaching what was never attached: err = %v, want ErrNotFound", err)
		}
	}
	m.Close()
	if err := m.DetachTracepoint("syscalls:sys_enter_getppid"); !errors.Is(err, ErrClosed) {
		t.Errorf("DetachTracepoint after Close: err = %v, want ErrClosed", err)
	}
	if got := m.NumOpenTracepoints(); got != 0 {
		t.Errorf("NumOpenTracepoints after Close = %d, want 0", got)
	}
}

// TestUprobeAttachDetachCycles attaches and detaches a uprobe a thousand
// times: no fd, goroutine or tracefs entry may be left, and the probe still
// counts exactly afterwards.
func TestUprobeAttachDetachCycles(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := mustNewModule(t, traceSource, traceCflags()...)
	defer m.Close()
	bin := testutil.BuildC(t, uprobeTargetSource, "-fno-builtin")
	up := mustLoad(t)(m.LoadUprobe("up_add"))
	uret := mustLoad(t)(m.LoadUprobe("up_add_ret"))
	fds, gs := testutil.CountFDs(t), runtime.NumGoroutine()
	cycles := 1000
	if testing.Short() {
		cycles = 99
	}
	// Closing a uprobe waits for an RCU grace period: three workers, one
	// function each, overlap those waits. Every 50th cycle also attaches
	// and detaches a uretprobe.
	syms := []string{"gobpf_add", "gobpf_mul", "gobpf_other"}
	errs := make(chan error, len(syms))
	var workers sync.WaitGroup
	for w, sym := range syms {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := w; i < cycles; i += len(syms) {
				if err := m.AttachUprobe(bin, sym, up, -1); err != nil {
					errs <- fmt.Errorf("cycle %d: %w", i, err)
					return
				}
				if i%50 == 0 {
					if err := m.AttachUretprobe(bin, sym, uret, -1); err != nil {
						errs <- fmt.Errorf("cycle %d: %w", i, err)
						return
					}
					if err := m.DetachUretprobe(bin, sym, -1); err != nil {
						errs <- fmt.Errorf("cycle %d: %w", i, err)
						return
					}
				}
				if err := m.DetachUprobe(bin, sym, -1); err != nil {
					errs <- fmt.Errorf("cycle %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	workers.Wait() // counted below: they must have returned
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := m.NumOpenUprobes(); n != 0 {
		t.Errorf("NumOpenUprobes after %d cycles = %d, want 0", cycles, n)
	}
	if got := testutil.CountFDs(t); got != fds {
		t.Errorf("after %d attach/detach cycles: %d fds open, %d before", cycles, got, fds)
	}
	// Goroutines of the runtime and of earlier tests may still be ending:
	// give them the time testutil.CheckLeaks gives.
	got := runtime.NumGoroutine()
	for i := 0; i < 100 && got > gs; i++ {
		time.Sleep(20 * time.Millisecond)
		got = runtime.NumGoroutine()
	}
	if got > gs {
		buf := make([]byte, 1<<16)
		t.Errorf("after %d attach/detach cycles: %d goroutines, %d before\n%s", cycles, got, gs, buf[:runtime.Stack(buf, true)])
	}
	mark := "_bcc_" + strconv.Itoa(os.Getpid())
	for _, d := range tracefsDirs {
		b, err := os.ReadFile(d + "/uprobe_events")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, mark) {
				t.Errorf("uprobe_events still lists this process's probe: %s", l)
			}
		}
		break
	}
	if m.probes != nil && cap(m.probes) > 64 {
		t.Errorf("the attachment list grew to capacity %d over attach/detach cycles", cap(m.probes))
	}
	// Still works.
	if err := m.AttachUprobe(bin, "gobpf_add", up, -1); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, bin, "50")
	if got := lookupU64(t, m, "counts", tslotUprobe); got != 50 {
		t.Errorf("uprobe hits after the cycles = %d, want 50", got)
	}
	if got := lookupU64(t, m, "counts", tslotUretprobe); got != 0 {
		t.Errorf("uretprobe hits = %d, want 0 (it was always detached before the target ran)", got)
	}
}

// TestDetachRacesClose detaches, attaches and counts from several
// goroutines while the module closes: each call either works or returns
// ErrClosed, and Close leaves nothing attached.
func TestDetachRacesClose(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	for round := 0; round < 3; round++ {
		m := mustNewModule(t, traceSource, traceCflags()...)
		tp := mustLoad(t)(m.LoadTracepoint("tp_getppid"))
		raw := mustLoad(t)(m.LoadRawTracepoint("raw_tracepoint__sys_enter"))
		if err := m.AttachTracepoint("syscalls:sys_enter_getppid", tp); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 3)
		go func() {
			for i := 0; i < 20; i++ {
				err := m.AttachRawTracepoint("sys_enter", raw)
				if err == nil {
					err = m.DetachRawTracepoint("sys_enter")
				}
				if err != nil && !errors.Is(err, ErrClosed) {
					done <- err
					return
				}
			}
			done <- nil
		}()
		go func() {
			err := m.DetachTracepoint("syscalls:sys_enter_getppid")
			if err != nil && !errors.Is(err, ErrClosed) {
				done <- err
				return
			}
			m.NumOpenTracepoints()
			done <- nil
		}()
		go func() {
			m.Close()
			done <- nil
		}()
		for i := 0; i < 3; i++ {
			if err := <-done; err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		}
		if n := m.NumOpenTracepoints(); n != 0 {
			t.Errorf("round %d: NumOpenTracepoints after Close = %d", round, n)
		}
	}
}
