package bcc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

// expectRecords submits n records (getppid calls) and reads exactly n with
// r, checking each record's contents, then checks that no more arrive.
func expectRecords(t *testing.T, m *Module, r *PerfReader, n int) {
	t.Helper()
	base := getU64(t, m, "counts", 0)
	for i := 0; i < n; i++ {
		unix.Getppid()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recs := make([]Record, 16)
	// Records from several CPUs interleave: check the set of seqs.
	seen := make(map[uint64]bool, n)
	for len(seen) < n {
		k, err := r.ReadBatch(ctx, recs)
		if err != nil {
			t.Fatalf("after %d of %d records: %v", len(seen), n, err)
		}
		for _, rec := range recs[:k] {
			if rec.LostSamples > 0 {
				t.Fatalf("lost %d records", rec.LostSamples)
			}
			seq := getSeq(rec.RawSample)
			if seq < base || seq >= base+uint64(n) || seen[seq] {
				t.Fatalf("unexpected record seq %d (want %d..%d once)", seq, base, base+uint64(n)-1)
			}
			checkRecord(t, rec.RawSample, seq, true)
			seen[seq] = true
		}
	}
	time.Sleep(10 * time.Millisecond)
	if k, err := r.ReadAvailable(recs); k != 0 || err != nil {
		t.Fatalf("%d records more than the %d submitted (%v)", k, n, err)
	}
}

func getSeq(b []byte) uint64 {
	if len(b) < 8 {
		return ^uint64(0)
	}
	return binary.NativeEndian.Uint64(b)
}

// TestPerfReaderCloseKeepsNewer (issue 8, fault 2): closing a reader (or a
// PerfMap) never unplugs another reader of the same table. Closing an
// older reader leaves the newer one receiving; closing the newest hands
// the table back to the previous one still open.
func TestPerfReaderCloseKeepsNewer(t *testing.T) {
	m := perfMod.get(t, perfSource)
	t.Cleanup(testutil.CheckLeaks(t))
	open := func() *PerfReader {
		t.Helper()
		r, err := NewPerfReader(table(m, "events"), PerfReaderOptions{PageCount: 8})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	old, cur := open(), open()
	old.Close()
	expectRecords(t, m, cur, 100) // the old reader's Close left cur plugged

	newer := open()
	expectRecords(t, m, newer, 100)
	newer.Close()
	expectRecords(t, m, cur, 100) // back to the previous reader

	// A PerfMap opened before a reader and stopped after it was opened.
	pm, err := InitPerfMap(table(m, "events"), make(chan []byte, 10), nil)
	if err != nil {
		t.Fatal(err)
	}
	pm.Start()
	last := open()
	pm.Stop()
	expectRecords(t, m, last, 100)
	last.Close()
	expectRecords(t, m, cur, 100)
	cur.Close()

	// With no reader left the slots are empty: submissions fail.
	refused := getU64(t, m, "counts", 1)
	for i := 0; i < 10; i++ {
		unix.Getppid()
	}
	if got := getU64(t, m, "counts", 1) - refused; got != 10 {
		t.Fatalf("with every reader closed, %d of 10 submissions were refused", got)
	}
}

// TestReaderRegistrationRacesClose (issue 8, fault 6): readers created
// while Module.Close runs either are closed by it or fail with ErrClosed
// having released what they opened: no fd or goroutine is left.
func TestReaderRegistrationRacesClose(t *testing.T) {
	if !SupportsRingBuf() {
		t.Fatal("kernel lacks BPF ring buffers")
	}
	t.Cleanup(testutil.CheckLeaks(t))
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	opens := []func(pe, rb *Table) (read func(), err error){
		func(pe, rb *Table) (func(), error) {
			r, err := NewPerfReader(pe, PerfReaderOptions{PageCount: 1})
			if err != nil {
				return nil, err
			}
			return func() { r.Read(context.Background()) }, nil
		},
		func(pe, rb *Table) (func(), error) {
			pm, err := InitPerfMapWithPageCnt(pe, make(chan []byte), nil, 1)
			if err == nil {
				pm.Start()
			}
			return nil, err
		},
		func(pe, rb *Table) (func(), error) {
			r, err := NewRingBufReader(rb)
			if err != nil {
				return nil, err
			}
			return func() { r.Read(context.Background()) }, nil
		},
		func(pe, rb *Table) (func(), error) {
			r, err := InitRingBuf(rb, make(chan []byte))
			if err == nil {
				r.Start()
			}
			return nil, err
		},
	}
	var opened, refused int
	for round := 0; round < rounds; round++ {
		m, err := NewModuleWithError("BPF_PERF_OUTPUT(pe);\nBPF_RINGBUF_OUTPUT(rb, 1);\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		pe, rb := table(m, "pe"), table(m, "rb")
		var wg sync.WaitGroup
		var mu sync.Mutex
		errc := make(chan error, 16)
		start := make(chan struct{})
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				<-start
				for i := 0; ; i++ {
					read, err := opens[(g+i)%len(opens)](pe, rb)
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							errc <- fmt.Errorf("open racing Close: %v, want ErrClosed", err)
						}
						mu.Lock()
						refused++
						mu.Unlock()
						return
					}
					mu.Lock()
					opened++
					mu.Unlock()
					if read != nil { // blocked reads end with ErrClosed
						wg.Add(1)
						go func() { defer wg.Done(); read() }()
					}
				}
			}(g)
		}
		close(start)
		time.Sleep(time.Duration(rand.Intn(3000)) * time.Microsecond)
		m.Close()
		waited := make(chan struct{})
		go func() { wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			t.Fatal("readers opened while Module.Close ran were left open (their reads never ended)")
		}
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
	}
	t.Logf("%d rounds: %d readers opened (closed by Module.Close), %d opens refused with ErrClosed", rounds, opened, refused)
	if refused != 8*rounds {
		t.Fatalf("%d opens refused, want %d", refused, 8*rounds)
	}
}

// channelReader is what PerfMap and RingBuf share.
type channelReader interface {
	Start()
	Stop()
	Lost() uint64
}

// stopCase submits n records before Start, receives `take` of them on
// recv (checking contents), then stops receiving (keep false) or keeps
// receiving slowly (keep true) while Stop runs. Stop must return promptly
// either way; what was not handed over is counted in Lost.
func stopCase(t *testing.T, m *Module, open func(recv chan []byte) channelReader, padded bool, keep bool) {
	t.Helper()
	const n, take = 300, 100
	recv := make(chan []byte) // unbuffered: a record sent is a record received
	cr := open(recv)
	base := getU64(t, m, "counts", 0)
	for i := 0; i < n; i++ {
		unix.Getppid()
	}
	cr.Start()
	seen := make(map[uint64]bool)
	receive := func(d []byte) {
		seq := getSeq(d)
		if seq < base || seq >= base+n || seen[seq] {
			t.Errorf("unexpected record seq %d (base %d, seen before %v)", seq, base, seen[seq])
			return
		}
		checkRecord(t, d, seq, padded)
		seen[seq] = true
	}
	for len(seen) < take {
		select {
		case d := <-recv:
			receive(d)
		case <-time.After(5 * time.Second):
			t.Fatalf("received %d of %d records", len(seen), take)
		}
	}
	stopped := make(chan time.Duration)
	start := time.Now()
	go func() { cr.Stop(); stopped <- time.Since(start) }()
	var took time.Duration
	if keep {
	loop:
		for {
			select {
			case d := <-recv:
				receive(d)
				time.Sleep(200 * time.Microsecond) // a slow receiver
			case took = <-stopped:
				break loop
			}
		}
		if len(seen) != n || cr.Lost() != 0 {
			t.Fatalf("receiving until Stop returned: got %d of %d records, Lost() %d", len(seen), n, cr.Lost())
		}
	} else {
		select {
		case took = <-stopped:
		case <-time.After(StopGrace + 5*time.Second):
			t.Fatal("Stop hangs with nobody receiving")
		}
		if lost := cr.Lost(); lost != n-take {
			t.Fatalf("Stop with nobody receiving: Lost() %d, want %d (records never handed over)", lost, n-take)
		}
	}
	t.Logf("keep receiving %v: Stop took %v, received %d, lost %d", keep, took, len(seen), cr.Lost())
	cr.Stop() // idempotent, prompt
}

// TestChannelStopNeverHangs (issue 9 §4): PerfMap.Stop and RingBuf.Stop
// return promptly whether or not anyone still receives; records they could
// not hand over count as lost; a receiver that keeps receiving gets all.
func TestChannelStopNeverHangs(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("PerfMap/keepReceiving=%v", keep), func(t *testing.T) {
			m := perfMod.get(t, perfSource)
			t.Cleanup(testutil.CheckLeaks(t))
			stopCase(t, m, func(recv chan []byte) channelReader {
				pm, err := InitPerfMap(table(m, "events"), recv, nil)
				if err != nil {
					t.Fatal(err)
				}
				return pm
			}, true, keep)
		})
		t.Run(fmt.Sprintf("RingBuf/keepReceiving=%v", keep), func(t *testing.T) {
			m := ringbufModule(t)
			t.Cleanup(testutil.CheckLeaks(t))
			if err := setU32(m, "config", 1, 0); err != nil {
				t.Fatal(err)
			}
			stopCase(t, m, func(recv chan []byte) channelReader {
				rb, err := InitRingBuf(table(m, "events"), recv)
				if err != nil {
					t.Fatal(err)
				}
				return rb
			}, false, keep)
		})
	}
	// Stop without Start, and with a lost channel nobody reads.
	m := perfMod.get(t, perfSource)
	t.Cleanup(testutil.CheckLeaks(t))
	pm, err := InitPerfMap(table(m, "events"), make(chan []byte), make(chan uint64))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pm.Stop()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Stop before Start took %v", d)
	}
}

// TestPerfMapReceiverHiccup (issue 9 §3): while the receiver pauses, the
// PerfMap keeps draining the rings into its own queue, so the pause does
// not overflow the (small) rings: every record arrives, none is lost.
func TestPerfMapReceiverHiccup(t *testing.T) {
	m := perfMod.get(t, perfSource)
	t.Cleanup(testutil.CheckLeaks(t))
	recv := make(chan []byte, 16)
	pm, err := InitPerfMapWithPageCnt(table(m, "events"), recv, nil, 8) // 32 KiB: ~400 records per CPU
	if err != nil {
		t.Fatal(err)
	}
	pm.Start()
	base, refused := getU64(t, m, "counts", 0), getU64(t, m, "counts", 1)
	const n = 3000 // 7 times a ring's capacity
	for i := 0; i < n; i++ {
		unix.Getppid()
		if i%100 == 99 {
			time.Sleep(2 * time.Millisecond) // the receiver is not receiving
		}
	}
	seen := make(map[uint64]bool, n)
	for len(seen) < n {
		select {
		case d := <-recv:
			seq := getSeq(d)
			if seq < base || seq >= base+n || seen[seq] {
				t.Fatalf("unexpected record seq %d", seq)
			}
			checkRecord(t, d, seq, true)
			seen[seq] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("received %d of %d records (program refused %d, Lost() %d)", len(seen), n, getU64(t, m, "counts", 1)-refused, pm.Lost())
		}
	}
	pm.Stop()
	if r := getU64(t, m, "counts", 1) - refused; r != 0 || pm.Lost() != 0 {
		t.Fatalf("rings overflowed while the receiver paused: %d refused, Lost() %d", r, pm.Lost())
	}
}
