package perfring

import (
	"context"
	"testing"
	"time"

	"github.com/iovisor/gobpf/internal/testutil"
)

// TestPerfReaderSlots: of several readers on one perf event array the
// newest receives; closing an older one does not unplug it; closing the
// newest hands the slots back to the previous one; with none left the
// program's output fails.
func TestPerfReaderSlots(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	m := newPerfArray(t)
	prog := perfProg(t, m)
	cpus, _ := onlineCPUs()
	e := newEmitter(t, prog, cpus[0])
	open := func() *PerfReader {
		r, err := NewPerfReader(m, PerfReaderOptions{PageCount: 2})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	seq := uint64(0)
	expect := func(r *PerfReader, silent ...*PerfReader) {
		t.Helper()
		first := seq
		for i := 0; i < 100; i++ {
			if rc := e.emit(seq); rc != 0 {
				t.Fatalf("bpf_perf_event_output returned %d", rc)
			}
			seq++
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		recs := make([]Record, 32)
		for want := first; want < seq; {
			k, err := r.ReadBatch(ctx, recs)
			if err != nil {
				t.Fatalf("record %d: %v", want, err)
			}
			for _, g := range recs[:k] {
				if g.LostSamples != 0 || string(g.RawSample[:recSize]) != string(seqRecord(want)) {
					t.Fatalf("record %d: got lost %d %x", want, g.LostSamples, g.RawSample)
				}
				want++
			}
		}
		for _, o := range silent {
			if k, err := o.ReadAvailable(recs); k != 0 || err != nil {
				t.Fatalf("another reader got %d records (%v)", k, err)
			}
		}
	}
	a, b := open(), open()
	expect(b, a)
	a.Close()
	expect(b)
	c := open()
	expect(c, b)
	c.Close()
	expect(b)
	b.Close()
	if rc := e.emit(seq); rc == 0 {
		t.Fatal("bpf_perf_event_output succeeded with every reader closed")
	}
	slots.mu.Lock()
	n := len(slots.owners)
	slots.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d slot records left after every reader closed", n)
	}
}
