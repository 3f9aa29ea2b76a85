package elf

import (
	"encoding/binary"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

// TestPerfMapChannel covers elf's channel API (PollStart/PollStop, the pump
// bcc's PerfMap uses): records waiting in the rings when polling starts
// arrive in the order SetTimestampFunc gives; PollStop hands over what is
// left while the receiver takes it, then closes the channels; and it gives
// up on a receiver that stopped taking, counting the rest in Lost.
func TestPerfMapChannel(t *testing.T) {
	cleanPins(t)
	defer cleanPins(t)
	defer testutil.CheckLeaks(t)()
	m := loadTestModule(t)
	defer func() {
		if err := m.CloseExt(unpinAll); err != nil {
			t.Errorf("CloseExt: %v", err)
		}
	}()
	setConfig(t, m, 0, uint32(os.Getpid()))
	setConfig(t, m, 1, uint32(unix.SYS_GETPPID))
	if err := m.EnableTracepoint("tracepoint/syscalls/sys_enter_getppid"); err != nil {
		t.Fatal(err)
	}
	seqOf := func(b []byte) uint64 { return uint64(binary.LittleEndian.Uint32(b[4:8])) }
	receive := func(t *testing.T, recv chan []byte) uint64 {
		t.Helper()
		select {
		case b, ok := <-recv:
			if !ok {
				t.Fatal("receive channel closed")
			}
			if len(b) != 28 {
				t.Fatalf("record of %d bytes: %x", len(b), b)
			}
			return seqOf(b)
		case <-time.After(10 * time.Second):
			t.Fatal("no record within 10 s")
		}
		return 0
	}

	t.Run("OrderAndStop", func(t *testing.T) {
		recv, lost := make(chan []byte), make(chan uint64, 4)
		pm, err := InitPerfMap(m, "events", recv, lost)
		if err != nil {
			t.Fatal(err)
		}
		pm.SetTimestampFunc(func(b *[]byte) uint64 { return seqOf(*b) })
		// Submitted before polling starts: they wait in the rings (8
		// pages per CPU hold 819 of these 40-byte records), on whichever
		// CPUs this thread ran, and are read as one batch.
		base := counter(t, m, cTracepoint)
		const pending, live = 400, 300
		for i := 0; i < pending; i++ {
			unix.Getppid()
		}
		pm.PollStart()
		for i := 0; i < pending; i++ {
			if s := receive(t, recv); s != base+uint64(i)+1 {
				t.Fatalf("record %d has seq %d, want %d (timestamp order)", i, s, base+uint64(i)+1)
			}
		}
		for i := 0; i < live; i++ {
			unix.Getppid()
		}
		got := make(chan map[uint64]int)
		go func() {
			seen := map[uint64]int{}
			for b := range recv { // ends when PollStop closes recv
				seen[seqOf(b)]++
			}
			got <- seen
		}()
		pm.PollStop()
		seen := <-got
		for s := base + pending + 1; s <= base+pending+live; s++ {
			if seen[s] != 1 {
				t.Errorf("record with seq %d received %d times, want once", s, seen[s])
			}
		}
		if len(seen) != live {
			t.Errorf("received %d records after polling started, want %d", len(seen), live)
		}
		if n, ok := <-lost; ok {
			t.Errorf("lost notice %d; lost channel not closed by PollStop", n)
		}
		if n := pm.Lost(); n != 0 {
			t.Errorf("Lost() = %d", n)
		}
	})

	t.Run("StopGivesUp", func(t *testing.T) {
		recv := make(chan []byte)
		pm, err := InitPerfMap(m, "events", recv, nil)
		if err != nil {
			t.Fatal(err)
		}
		pm.PollStart()
		const n = 50
		for i := 0; i < n; i++ {
			unix.Getppid()
		}
		receive(t, recv) // then nobody receives
		start := time.Now()
		stopped := make(chan struct{})
		go func() { pm.PollStop(); close(stopped) }()
		// While PollStop waits for the receiver, Lost answers at once.
		time.Sleep(50 * time.Millisecond)
		lostStart := time.Now()
		pm.Lost()
		if d := time.Since(lostStart); d > 20*time.Millisecond {
			t.Errorf("Lost() took %v while PollStop waited for the receiver", d)
		}
		<-stopped
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("PollStop took %v with nobody receiving", d)
		}
		if got := pm.Lost(); got != n-1 {
			t.Errorf("Lost() = %d, want %d (the records never handed over)", got, n-1)
		}
		if _, ok := <-recv; ok {
			t.Error("receive channel not closed by PollStop")
		}
	})
}
