package bcc

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

// TestKprobeFunctions lists traceable kernel functions by regular
// expression: from available_filter_functions, or (where that is
// unreadable, as on a locked-down kernel) from kallsyms minus what bcc
// leaves out.
func TestKprobeFunctions(t *testing.T) {
	fns, err := KprobeFunctions(`vfs_(read|write)`)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fns, []string{"vfs_read", "vfs_write"}) {
		t.Errorf("KprobeFunctions(vfs_(read|write)) = %v, want [vfs_read vfs_write] (whole names only)", fns)
	}
	sys, err := KprobeFunctions(GetSyscallPrefix() + "get.*")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(sys, GetSyscallFnName("getpgid")) || !slices.IsSorted(sys) {
		t.Errorf("KprobeFunctions(%sget.*) = %v: unsorted or without getpgid's function", GetSyscallPrefix(), sys)
	}
	for _, re := range []string{`perf_event_.*`, `.*\.cold(\.\d+)?`, `__SCT__.*`, `_kbl_addr_.*`} {
		if fns, err := KprobeFunctions(re); err != nil || len(fns) != 0 {
			t.Errorf("KprobeFunctions(%s) = %d functions (%v), want none (not probeable)", re, len(fns), err)
		}
	}
	all, err := KprobeFunctions(`.*`)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 1000 || slices.Contains(all, "start_kernel") && !availableFilterReadable() {
		t.Errorf("KprobeFunctions(.*): %d functions; init code (start_kernel) listed: %v", len(all), slices.Contains(all, "start_kernel"))
	}
	if _, err := KprobeFunctions(`(`); err == nil {
		t.Error("bad regular expression: no error")
	}
}

func availableFilterReadable() bool {
	_, err := availableFilterFunctions()
	return err == nil
}

// kprobeModule compiles traceSource for the kprobe tests (the caller closes
// it), after checking on a kernel without kprobes that attaching says so.
func kprobeModule(t *testing.T) *Module {
	m := mustNewModule(t, traceSource, traceCflags()...)
	if !testutil.HaveKprobes() {
		defer m.Close()
		fd := mustLoad(t)(m.LoadKprobe("kp"))
		_, err := m.AttachMatchingKprobes(GetSyscallPrefix()+"getpgid", fd, 0)
		if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "CONFIG_KPROBES") {
			t.Errorf("AttachMatchingKprobes without kprobes: err = %v, want ErrNotSupported naming CONFIG_KPROBES", err)
		}
		if err := m.AttachKprobeOffset(GetSyscallFnName("getpgid"), 4, fd); !errors.Is(err, ErrNotSupported) {
			t.Errorf("AttachKprobeOffset without kprobes: err = %v, want ErrNotSupported", err)
		}
	}
	testutil.RequireKprobes(t)
	return m
}

// TestKprobeOffset places a kprobe inside a syscall function (at the first
// instruction boundary after the start that the kernel accepts) and counts
// the calls exactly; an offset inside an instruction is refused.
func TestKprobeOffset(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := kprobeModule(t)
	defer m.Close()
	fn := GetSyscallFnName("getpgid")
	fd := mustLoad(t)(m.LoadKprobe("kp"))
	fd2 := mustLoad(t)(m.LoadKprobe("kp2"))
	if err := m.AttachKprobeOffset(fn, 1, fd); err == nil {
		t.Fatal("kprobe at offset 1 (inside the first instruction) accepted")
	} else {
		t.Logf("offset 1: %v", err)
	}
	off := uint64(0)
	for o := uint64(2); o <= 16; o++ {
		if err := m.AttachKprobeOffset(fn, o, fd); err == nil {
			off = o
			break
		}
	}
	if off == 0 {
		t.Fatalf("no offset in [2, 16] of %s took a kprobe", fn)
	}
	t.Logf("kprobe at %s+%#x", fn, off)
	// The same place written as "fn+off", in decimal.
	if err := m.AttachKprobe(fmt.Sprintf("%s+%d", fn, off), fd2, 0); err != nil {
		t.Fatal(err)
	}
	if got := m.NumOpenKprobes(); got != 2 {
		t.Errorf("NumOpenKprobes = %d, want 2", got)
	}
	getpgids(77)
	if a, b := lookupU64(t, m, "counts", tslotKprobe), lookupU64(t, m, "counts", tslotKprobe2); a != 77 || b != 77 {
		t.Errorf("kprobes at +%#x saw %d and %d getpgid calls, want 77 each", off, a, b)
	}
	if err := m.DetachKprobe(fmt.Sprintf("%s+%#x", fn, off)); err != nil {
		t.Fatal(err)
	}
	if err := m.DetachKprobe(fn); !errors.Is(err, ErrNotFound) {
		t.Errorf("DetachKprobe(%s) with probes only at an offset: err = %v, want ErrNotFound", fn, err)
	}
	getpgids(5)
	if a, b := lookupU64(t, m, "counts", tslotKprobe), lookupU64(t, m, "counts", tslotKprobe2); a != 77 || b != 77 {
		t.Errorf("after DetachKprobe: %d and %d, want 77 and 77", a, b)
	}
	if got := m.NumOpenKprobes(); got != 0 {
		t.Errorf("NumOpenKprobes = %d, want 0", got)
	}
}

// TestMatchingKprobes attaches kprobes and kretprobes by regular expression
// (bcc's event_re), counts exactly, and detaches one function.
func TestMatchingKprobes(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := kprobeModule(t)
	defer m.Close()
	fd := mustLoad(t)(m.LoadKprobe("kp"))
	rfd := mustLoad(t)(m.LoadKprobe("kret"))
	p := GetSyscallPrefix()
	if _, err := m.AttachMatchingKprobes(p+"gobpf_nothing_.*", fd, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("no match: err = %v, want ErrNotFound", err)
	}
	got, err := m.AttachMatchingKprobes(p+"get(pgid|sid)", fd, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{p + "getpgid", p + "getsid"}; !slices.Equal(got, want) {
		t.Fatalf("attached to %v, want %v", got, want)
	}
	if _, err := m.AttachMatchingKretprobes(p+"getpgid", rfd, 0); err != nil {
		t.Fatal(err)
	}
	if n := m.NumOpenKprobes(); n != 3 {
		t.Errorf("NumOpenKprobes = %d, want 3", n)
	}
	getpgids(30)
	for i := 0; i < 20; i++ {
		unix.Getsid(0)
	}
	count := func(slot int) uint64 { return lookupU64(t, m, "counts", uint32(slot)) }
	if k, r, v := count(tslotKprobe), count(tslotKretprobe), count(tslotKretValue); k != 50 || r != 30 || v != 30 {
		t.Errorf("kprobes/kretprobes/kretprobes returning the pgid = %d/%d/%d, want 50/30/30", k, r, v)
	}
	if err := m.DetachKprobe(p + "getsid"); err != nil {
		t.Fatal(err)
	}
	if err := m.DetachKretprobe(p + "getpgid"); err != nil {
		t.Fatal(err)
	}
	getpgids(4)
	unix.Getsid(0)
	if k, r := count(tslotKprobe), count(tslotKretprobe); k != 54 || r != 30 {
		t.Errorf("after detaching getsid's kprobe and the kretprobe: %d/%d, want 54/30", k, r)
	}
}

// TestKprobeMulti attaches one kprobe.multi link to two syscall functions
// and a kretprobe.multi link to one, counts exactly and detaches them.
func TestKprobeMulti(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := mustNewModule(t, traceSource, traceCflags()...)
	defer m.Close()
	p := GetSyscallPrefix()
	fns := []string{p + "getpgid", p + "getsid"}
	fd := mustLoad(t)(m.LoadKprobeMulti("kp"))
	if !SupportsKprobeMulti() {
		err := m.AttachKprobeMulti(fns, fd)
		if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "kprobe") {
			t.Errorf("AttachKprobeMulti where unsupported: err = %v, want ErrNotSupported", err)
		}
		if !testutil.HaveKprobes() && !strings.Contains(err.Error(), "CONFIG_KPROBES") {
			t.Errorf("AttachKprobeMulti without kprobes: error does not name CONFIG_KPROBES: %v", err)
		}
		requireFeature(t, false, "GOBPF_REQUIRE_KPROBE_MULTI", "kprobe.multi links (Linux 5.18, CONFIG_FPROBE)", err)
	}
	rfd := mustLoad(t)(m.LoadKprobeMulti("kret"))
	if err := m.AttachKprobeMulti([]string{p + "getpgid", "gobpf_no_such_function"}, fd); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown function: err = %v, want ErrNotFound", err)
	}
	if err := m.AttachKprobeMulti(fns, fd); err != nil {
		t.Fatal(err)
	}
	if err := m.AttachKretprobeMulti(fns[:1], rfd); err != nil {
		t.Fatal(err)
	}
	if n := m.NumOpenKprobes(); n != 3 {
		t.Errorf("NumOpenKprobes = %d, want 3", n)
	}
	getpgids(40)
	for i := 0; i < 15; i++ {
		unix.Getsid(0)
	}
	count := func(slot int) uint64 { return lookupU64(t, m, "counts", uint32(slot)) }
	if k, r, v := count(tslotKprobe), count(tslotKretprobe), count(tslotKretValue); k != 55 || r != 40 || v != 40 {
		t.Errorf("kprobe.multi/kretprobe.multi/returning the pgid = %d/%d/%d, want 55/40/40", k, r, v)
	}
	if err := m.DetachKprobeMulti(fd); err != nil {
		t.Fatal(err)
	}
	getpgids(3)
	if k, r := count(tslotKprobe), count(tslotKretprobe); k != 55 || r != 43 {
		t.Errorf("kprobe.multi detached: %d/%d, want 55/43", k, r)
	}
	if n := m.NumOpenKprobes(); n != 1 {
		t.Errorf("NumOpenKprobes = %d, want 1", n)
	}
}

// TestKprobeMultiAttachTime measures attaching one program to 500 kernel
// functions with one kprobe.multi link against 500 single kprobes.
func TestKprobeMultiAttachTime(t *testing.T) {
	testutil.RequireKprobes(t)
	requireFeature(t, SupportsKprobeMulti(), "GOBPF_REQUIRE_KPROBE_MULTI", "kprobe.multi links (Linux 5.18, CONFIG_FPROBE)", kmultiErr)
	const n = 500
	// ACPICA's interpreter and table code: many functions, rarely called.
	fns, err := KprobeFunctions(`acpi_(ut|ns|ps|ex|ds|tb|rs|ev|hw)_.*`)
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) < n {
		more, _ := KprobeFunctions(`(acpi|pci|kobject|xa|rb|idr|seq|kstrto|crypto)_.*`)
		fns = slices.Compact(slices.Sorted(slices.Values(append(fns, more...))))
	}
	if len(fns) < n {
		t.Fatalf("only %d probeable functions found", len(fns))
	}
	fns = fns[:n]
	m := mustNewModule(t, traceSource, traceCflags()...)
	defer m.Close()
	mfd := mustLoad(t)(m.LoadKprobeMulti("kp"))
	sfd := mustLoad(t)(m.LoadKprobe("kp2"))

	t0 := time.Now()
	if err := m.AttachKprobeMulti(fns, mfd); err != nil {
		t.Fatal(err)
	}
	multi := time.Since(t0)
	t0 = time.Now()
	if err := m.DetachKprobeMulti(mfd); err != nil {
		t.Fatal(err)
	}
	multiDetach := time.Since(t0)

	t0 = time.Now()
	failed := 0
	for _, fn := range fns {
		if err := m.AttachKprobe(fn, sfd, 0); err != nil {
			failed++
		}
	}
	single := time.Since(t0)
	t0 = time.Now()
	for _, fn := range fns {
		m.DetachKprobe(fn)
	}
	singleDetach := time.Since(t0)
	if failed > n/10 {
		t.Errorf("%d of %d single kprobes failed", failed, n)
	}
	t.Logf("attach %d functions: kprobe.multi %v, single kprobes %v (%d failed): %.1fx; detach: %v vs %v",
		n, multi.Round(time.Microsecond), single.Round(time.Millisecond), failed, float64(single)/float64(multi),
		multiDetach.Round(time.Microsecond), singleDetach.Round(time.Millisecond))
	fmt.Printf("KPROBE_MULTI_ATTACH n=%d multi=%v single=%v ratio=%.1f\n", n, multi, single, float64(single)/float64(multi))
}
