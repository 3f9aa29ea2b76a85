package testutil

import (
	"context"
	"errors"
	"testing"
	"time"
)

// ReaderWakeups checks a record reader's waits: a blocked read returns at
// once when its context is cancelled or when the reader is closed (with
// errClosed), a read past its deadline returns, Close is idempotent and a
// closed reader's read fails with errClosed. The reader must have no
// record pending.
func ReaderWakeups[R any](t *testing.T, read func(context.Context) (R, error), close func() error, errClosed error) {
	t.Helper()
	// Context cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { _, err := read(ctx); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Read took %v to notice cancellation", d)
	}
	// Deadline.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read past deadline: %v", err)
	}
	// Close.
	go func() { _, err := read(context.Background()); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	if err := close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, errClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Close took %v to wake Read", d)
	}
	if err := close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := read(context.Background()); !errors.Is(err, errClosed) {
		t.Fatalf("Read on closed reader: %v", err)
	}
}
