package elf

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/iovisor/gobpf/internal/testutil"
)

// TestModernCloseRace: attaching, reading variables and closing links from
// several goroutines while the module closes: every call either works or
// returns ErrClosed, and nothing leaks.
func TestModernCloseRace(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	for round := 0; round < 3; round++ {
		m := NewModule(modernObject(t))
		m.SetConstant("target_tgid", uint32(os.Getpid()))
		if err := m.Load(nil); err != nil {
			t.Fatal(err)
		}
		p, err := m.Program("rawtp_sys_enter")
		if err != nil {
			t.Fatal(err)
		}
		rb, err := m.OpenRingBuf("events")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < 20; i++ {
					l, err := p.Attach()
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							t.Errorf("Attach: %v", err)
						}
						return
					}
					var c [mMax]uint64
					if err := m.ReadVariable("counts", &c); err != nil && !errors.Is(err, ErrClosed) {
						t.Errorf("ReadVariable: %v", err)
					}
					l.Close()
				}
			}()
		}
		close(start)
		if err := m.Close(); err != nil {
			t.Error(err)
		}
		wg.Wait()
		if _, err := p.Attach(); !errors.Is(err, ErrClosed) {
			t.Errorf("Attach after Close: %v", err)
		}
		if err := m.ReadVariable("data_init", new(uint64)); !errors.Is(err, ErrClosed) {
			t.Errorf("ReadVariable after Close: %v", err)
		}
		if _, err := rb.Read(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("ring buffer Read after Close: %v", err)
		}
	}
}
