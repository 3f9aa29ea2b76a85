package elf

import (
	"encoding/binary"
	"os"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

// pinToCPU runs the calling goroutine's thread on its current CPU only, so
// that every record lands in one CPU's ring; the returned func undoes it.
func pinToCPU(t *testing.T) func() {
	t.Helper()
	runtime.LockOSThread()
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		t.Fatal(err)
	}
	var c, node uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&c)), uintptr(unsafe.Pointer(&node)), 0); e != 0 {
		t.Fatal(e)
	}
	one.Set(int(c))
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	return func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	}
}

// TestPerfMapBackward is issue 9 §2: overwritable (backward) perf rings. A
// one-page ring wraps many times; DumpBackward returns the newest records,
// exactly, and keeps them; SwapAndDumpBackward returns them too and leaves
// fresh rings that receive what comes next.
func TestPerfMapBackward(t *testing.T) {
	cleanPins(t)
	defer cleanPins(t)
	defer testutil.CheckLeaks(t)()
	params := map[string]SectionParams{"maps/events": {PerfRingBufferBackward: true, PerfRingBufferOverwritable: true, PerfRingBufferPageCount: 1}}
	for k, v := range testParams {
		params[k] = v
	}
	m := NewModule(testObject(t))
	if err := m.Load(params); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.CloseExt(unpinAll); err != nil {
			t.Errorf("CloseExt: %v", err)
		}
	}()
	setConfig(t, m, 0, uint32(os.Getpid()))
	pm, err := InitPerfMap(m, "events", make(chan []byte), nil)
	if err != nil {
		t.Fatal(err)
	}
	seqOf := func(b []byte) uint64 { return uint64(binary.LittleEndian.Uint32(b[4:])) }
	pm.SetTimestampFunc(func(b *[]byte) uint64 { return seqOf(*b) })
	pm.PollStart() // a no-op for overwritable rings
	if err := m.EnableTracepoint("tracepoint/syscalls/sys_enter_getppid"); err != nil {
		t.Fatal(err)
	}
	if got := pm.DumpBackward(); len(got) != 0 {
		t.Fatalf("DumpBackward before any event: %d records", len(got))
	}
	// Each record takes 40 bytes of the 4 KiB ring: 1,000 wrap it ~10 times.
	unpin := pinToCPU(t)
	const n = 1000
	for i := 0; i < n; i++ {
		unix.Getppid()
	}
	unpin()
	last := counter(t, m, cTracepoint)
	pid := uint32(os.Getpid())
	check := func(what string, got [][]byte, newest uint64, min, max int) {
		t.Helper()
		if len(got) < min || len(got) > max {
			t.Fatalf("%s: %d records, want %d..%d", what, len(got), min, max)
		}
		for i, b := range got {
			want := newest - uint64(len(got)-1-i)
			if len(b) != 28 || binary.LittleEndian.Uint32(b) != pid || seqOf(b) != want ||
				binary.LittleEndian.Uint64(b[8:]) != 0xfeedfacecafebeef || string(b[16:22]) != "gobpf!" {
				t.Fatalf("%s: record %d = %x, want tgid %d seq %d magic and tag", what, i, b, pid, want)
			}
		}
	}
	// 4096/40 = 102 records fit; the oldest may be partly overwritten.
	got := pm.DumpBackward()
	check("DumpBackward", got, last, 101, 102)
	t.Logf("ring wrapped: %d events emitted, DumpBackward returned seq %d..%d", last, seqOf(got[0]), seqOf(got[len(got)-1]))
	again := pm.DumpBackward()
	check("second DumpBackward", again, last, len(got), len(got))

	swapped := pm.SwapAndDumpBackward()
	check("SwapAndDumpBackward", swapped, last, len(got), len(got))
	if got := pm.DumpBackward(); len(got) != 0 {
		t.Fatalf("DumpBackward after the swap: %d records, want 0", len(got))
	}
	unpin = pinToCPU(t)
	for i := 0; i < 5; i++ {
		unix.Getppid()
	}
	unpin()
	check("DumpBackward of the fresh rings", pm.DumpBackward(), last+5, 5, 5)
	pm.PollStop()
	if got := pm.DumpBackward(); got != nil {
		t.Errorf("DumpBackward after PollStop: %d records", len(got))
	}
}
