package elf

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

// TestPerfMapStopAndDump covers gobpf's PerfMapStop and DumpBackward (which
// drains forward rings) and the rejection of rings that are backward but
// not overwritable.
func TestPerfMapStopAndDump(t *testing.T) {
	cleanPins(t)
	defer cleanPins(t)
	defer testutil.CheckLeaks(t)()

	m := NewModule(testObject(t))
	params := map[string]SectionParams{"maps/events": {PerfRingBufferBackward: true}}
	for k, v := range testParams {
		if k != "maps/events" {
			params[k] = v
		}
	}
	err := m.Load(params)
	if !errors.Is(err, ErrNotSupported) {
		t.Errorf("Load with backward but not overwritable perf rings: %v, want ErrNotSupported", err)
	}
	m.Close()
	cleanPins(t)

	m = loadTestModule(t)
	defer func() {
		if err := m.CloseExt(unpinAll); err != nil {
			t.Errorf("CloseExt: %v", err)
		}
	}()
	setConfig(t, m, 0, uint32(os.Getpid()))
	setConfig(t, m, 1, uint32(unix.SYS_GETPPID))
	pm, err := InitPerfMap(m, "events", make(chan []byte), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.PollStop()
	if err := m.EnableTracepoint("tracepoint/syscalls/sys_enter_getppid"); err != nil {
		t.Fatal(err)
	}
	pm.SetTimestampFunc(func(b *[]byte) uint64 { // order by the event's seq field
		return uint64((*b)[4]) | uint64((*b)[5])<<8 | uint64((*b)[6])<<16 | uint64((*b)[7])<<24
	})
	if got := pm.DumpBackward(); len(got) != 0 {
		t.Errorf("DumpBackward before any event: %d records", len(got))
	}
	tp0 := counter(t, m, cTracepoint)
	const n = 3
	for i := 0; i < n; i++ {
		unix.Getppid()
	}
	got := pm.SwapAndDumpBackward()
	if len(got) != n {
		t.Fatalf("DumpBackward: %d records, want %d", len(got), n)
	}
	for i, b := range got {
		if len(b) != 28 {
			t.Fatalf("record %d is %d bytes", i, len(b))
		}
		if seq := pm.timestamp(&got[i]); seq != tp0+uint64(i)+1 {
			t.Errorf("record %d has seq %d, want %d", i, seq, tp0+uint64(i)+1)
		}
	}

	if err := m.PerfMapStop("events"); err != nil {
		t.Fatal(err)
	}
	unix.Getppid()
	if c := counter(t, m, cTracepoint); c != tp0+n+1 {
		t.Errorf("tracepoint counter %d, want %d", c, tp0+n+1)
	}
	if got := pm.DumpBackward(); len(got) != 0 {
		t.Errorf("DumpBackward after PerfMapStop: %d records, want 0", len(got))
	}
	if err := m.PerfMapStop("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("PerfMapStop of a missing map: %v", err)
	}
	if err := m.PerfMapStop("hash_map"); err == nil {
		t.Error("PerfMapStop of a hash map succeeded")
	}
}
