package elf

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/perfring"
)

// RingBufRecord is one record of a ring buffer: RawSample holds exactly
// what the program submitted.
type RingBufRecord = perfring.Record

// RingBuf reads a BPF_MAP_TYPE_RINGBUF map of a module with the same
// reader bcc uses. Read, ReadInto and ReadBatch block until records come
// (or ctx is done, or Close); Start sends records to a channel instead.
type RingBuf struct {
	name string
	mod  *Module
	r    *perfring.RingBufReader

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// OpenRingBuf returns a reader of ring buffer map name. The module's Close
// closes it too.
func (b *Module) OpenRingBuf(name string) (*RingBuf, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("elf: ring buffer %q: %w", name, ErrClosed)
	}
	m, ok := b.maps[name]
	if !ok {
		return nil, fmt.Errorf("elf: ring buffer %q: %w", name, ErrNotFound)
	}
	if m.def.Type != uint32(bpfsys.BPF_MAP_TYPE_RINGBUF) {
		return nil, fmt.Errorf("elf: map %q is of type %d, not a ring buffer", name, m.def.Type)
	}
	r, err := perfring.NewRingBufReader(m.fd)
	if err != nil {
		return nil, fmt.Errorf("elf: ring buffer %q: %w", name, err)
	}
	rb := &RingBuf{name: name, mod: b, r: r}
	b.x.rings[rb] = struct{}{}
	return rb, nil
}

func mapReadErr(err error) error {
	if errors.Is(err, perfring.ErrClosed) {
		return fmt.Errorf("elf: ring buffer: %w", ErrClosed)
	}
	return err
}

// Read waits for the next record.
func (rb *RingBuf) Read(ctx context.Context) (RingBufRecord, error) {
	rec, err := rb.r.Read(ctx)
	return rec, mapReadErr(err)
}

// ReadInto waits for the next record and stores it in rec, reusing its
// RawSample's capacity.
func (rb *RingBuf) ReadInto(ctx context.Context, rec *RingBufRecord) error {
	return mapReadErr(rb.r.ReadInto(ctx, rec))
}

// ReadBatch waits for at least one record and fills recs with as many
// pending records as fit; it returns how many.
func (rb *RingBuf) ReadBatch(ctx context.Context, recs []RingBufRecord) (int, error) {
	n, err := rb.r.ReadBatch(ctx, recs)
	return n, mapReadErr(err)
}

// Start sends every record's data to ch from a goroutine, until Stop or
// Close. ch must be drained.
func (rb *RingBuf) Start(ch chan<- []byte) error {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if rb.cancel != nil {
		return fmt.Errorf("elf: ring buffer %q already started", rb.name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rb.cancel, rb.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		for {
			rec, err := rb.r.Read(ctx)
			if err != nil {
				return
			}
			select {
			case ch <- rec.RawSample:
			case <-ctx.Done():
				return
			}
		}
	}(rb.done)
	return nil
}

// Stop stops the goroutine Start started and waits for it.
func (rb *RingBuf) Stop() {
	rb.mu.Lock()
	cancel, done := rb.cancel, rb.done
	rb.cancel, rb.done = nil, nil
	rb.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Close stops the reader; a blocked Read returns ErrClosed.
func (rb *RingBuf) Close() error {
	rb.mod.mu.Lock()
	defer rb.mod.mu.Unlock()
	return rb.closeLocked()
}

func (rb *RingBuf) closeLocked() error {
	err := rb.r.Close()
	rb.Stop()
	delete(rb.mod.x.rings, rb)
	return err
}
