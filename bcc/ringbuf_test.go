package bcc

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

// ringbufSource emits the same records as perfSource into a ring buffer:
// with config[1] == 0 into events (16 pages, ringbuf_reserve/submit), else
// into tiny (1 page, ringbuf_output). counts[0] counts submissions,
// counts[1] the ones the ring refused.
const ringbufSource = `
struct rec {
	u64 seq;
	u64 tgid;
	u64 w[6];
};

BPF_RINGBUF_OUTPUT(events, 16);
BPF_RINGBUF_OUTPUT(tiny, 1);
BPF_ARRAY(counts, u64, 2);
BPF_ARRAY(config, u32, 2);

static inline void fill(struct rec *r, u64 seq, u64 pid) {
	r->seq = seq;
	r->tgid = pid;
	#pragma unroll
	for (int i = 0; i < 6; i++)
		r->w[i] = seq * 7 + i;
}

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
	int zero = 0, one = 1;
	u32 *tgid = config.lookup(&zero);
	u32 *usetiny = config.lookup(&one);
	u64 pid = bpf_get_current_pid_tgid() >> 32;
	if (!tgid || !usetiny || pid != *tgid)
		return 0;
	u64 *c = counts.lookup(&zero);
	if (!c)
		return 0;
	u64 seq = *c;
	__sync_fetch_and_add(c, 1);
	int failed = 0;
	if (*usetiny) {
		struct rec r = {};
		fill(&r, seq, pid);
		failed = tiny.ringbuf_output(&r, sizeof(r), 0) < 0;
	} else {
		struct rec *r = events.ringbuf_reserve(sizeof(struct rec));
		if (r) {
			fill(r, seq, pid);
			events.ringbuf_submit(r, 0);
		} else {
			failed = 1;
		}
	}
	if (failed) {
		u64 *f = counts.lookup(&one);
		if (f)
			__sync_fetch_and_add(f, 1);
	}
	return 0;
}
`

var ringbufMod evModule

func ringbufModule(t *testing.T) *Module {
	t.Helper()
	if !SupportsRingBuf() {
		t.Fatal("kernel lacks BPF ring buffers")
	}
	m := ringbufMod.get(t, ringbufSource)
	// The module stays attached to getppid, which other tests call: empty
	// the rings of what it submitted meanwhile.
	for _, name := range []string{"events", "tiny"} {
		r, err := NewRingBufReader(table(m, name))
		if err != nil {
			t.Fatal(err)
		}
		for k := 1; k > 0; {
			if k, err = r.ReadAvailable(make([]Record, 256)); err != nil {
				t.Fatal(err)
			}
		}
		r.Close()
	}
	return m
}

func TestRingBufDelivers(t *testing.T) {
	m := ringbufModule(t)
	t.Cleanup(testutil.CheckLeaks(t))
	if err := setU32(m, "config", 1, 0); err != nil {
		t.Fatal(err)
	}
	recv := make(chan []byte, 16)
	rb, err := InitRingBuf(table(m, "events"), recv)
	if err != nil {
		t.Fatal(err)
	}
	rb.Start()
	base, baseDropped := getU64(t, m, "counts", 0), getU64(t, m, "counts", 1)
	const n = 5000 // 5000*72 bytes: the 64 KiB ring wraps
	var seen atomic.Int64
	errc := make(chan []byte, 1)
	go func() {
		for i := uint64(0); i < n; i++ {
			got := <-recv
			if string(got) != string(evRecord(base+i, uint64(unix.Getpid()))) {
				errc <- got
				return
			}
			seen.Add(1)
		}
		errc <- nil
	}()
	produce(t, n, &seen)
	select {
	case bad := <-errc:
		if bad != nil {
			checkRecord(t, bad, binary.NativeEndian.Uint64(bad), false)
			t.Fatalf("records out of order: got seq %d", binary.NativeEndian.Uint64(bad))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("records not delivered")
	}
	rb.Stop()
	if f := getU64(t, m, "counts", 1) - baseDropped; f != 0 {
		t.Fatalf("ring refused %d records", f)
	}
	if got := getU64(t, m, "counts", 0) - base; got != n {
		t.Fatalf("program saw %d calls, want %d", got, n)
	}
}

// TestRingBufFlood: a one-page ring refuses most records; delivered plus
// refused (counted by the program) equals submitted.
func TestRingBufFlood(t *testing.T) {
	m := ringbufModule(t)
	t.Cleanup(testutil.CheckLeaks(t))
	if err := setU32(m, "config", 1, 1); err != nil {
		t.Fatal(err)
	}
	defer setU32(m, "config", 1, 0)
	recv := make(chan []byte, 1024)
	rb, err := InitRingBuf(table(m, "tiny"), recv)
	if err != nil {
		t.Fatal(err)
	}
	base, baseDropped := getU64(t, m, "counts", 0), getU64(t, m, "counts", 1)
	var received uint64
	var mu sync.Mutex
	var lastSeq uint64
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for d := range recv {
			seq := binary.NativeEndian.Uint64(d)
			mu.Lock()
			if received > 0 && seq <= lastSeq {
				t.Errorf("seq %d after %d", seq, lastSeq)
			}
			received++
			lastSeq = seq
			mu.Unlock()
		}
	}()
	rb.Start()
	const n = 100000
	for i := 0; i < n; i++ {
		unix.Getppid()
	}
	rb.Stop() // delivers what the ring holds
	close(recv)
	<-consumed
	submitted := getU64(t, m, "counts", 0) - base
	dropped := getU64(t, m, "counts", 1) - baseDropped
	t.Logf("submitted %d, delivered %d, dropped %d", submitted, received, dropped)
	if submitted != n || dropped == 0 || received+dropped != submitted {
		t.Fatalf("delivered %d + dropped %d != submitted %d", received, dropped, submitted)
	}
}

func TestRingBufReaderContext(t *testing.T) {
	m := ringbufModule(t)
	t.Cleanup(testutil.CheckLeaks(t))
	if err := setU32(m, "config", 1, 0); err != nil {
		t.Fatal(err)
	}
	r, err := NewRingBufReader(table(m, "events"))
	if err != nil {
		t.Fatal(err)
	}
	base := getU64(t, m, "counts", 0)
	for i := 0; i < 100; i++ {
		unix.Getppid()
	}
	var rec Record
	for i := uint64(0); i < 100; i++ {
		if err := r.ReadInto(context.Background(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.CPU != -1 {
			t.Fatalf("ring buffer record with CPU %d", rec.CPU)
		}
		checkRecord(t, rec.RawSample, base+i, false)
	}
	// A lone record wakes a blocked reader at once.
	go func() {
		time.Sleep(20 * time.Millisecond)
		unix.Getppid()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.ReadInto(ctx, &rec); err != nil {
		t.Fatal(err)
	}
	checkRecord(t, rec.RawSample, base+100, false)
	testutil.ReaderWakeups(t, r.Read, r.Close, ErrClosed)
}
