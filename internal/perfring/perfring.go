// Package perfring reads the records BPF programs emit, in pure Go (no cgo):
// perf event arrays (bpf_perf_event_output, one mmap'd ring per CPU) and
// BPF ring buffers (BPF_MAP_TYPE_RINGBUF, one ring shared by all CPUs).
//
// Both readers parse records straight from the shared memory the kernel
// writes, copy each record into a caller-owned buffer and hand back the
// space at once. They are built for throughput: the perf reader asks the
// kernel for a wakeup only once a watermark of bytes is pending (a burst
// costs one wakeup, not one per record) and bounds the latency of a lone
// record by polling the rings while idle; ReadBatch returns many records
// per call.
//
// Read, ReadInto and ReadBatch block until a record arrives, the context is
// done (they return ctx.Err()) or the reader is closed (ErrClosed); Close
// wakes a blocked reader at once. Readers serialize their callers: use one
// goroutine to read, any goroutine to Close.
package perfring

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/iovisor/gobpf/pkg/cpuonline"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by a reader that has been closed.
var ErrClosed = errors.New("perfring: reader closed")

// Record is one record read from a perf event array or a ring buffer.
type Record struct {
	// CPU is the CPU whose perf ring held the record; -1 for ring buffers.
	CPU int
	// RawSample is the data the program submitted. For perf event arrays
	// the kernel pads it so that its length plus 4 is a multiple of 8 (a
	// 64-byte submission arrives as 68 bytes); ring buffer records have
	// exactly the submitted length. Empty for a lost-records notice.
	RawSample []byte
	// LostSamples, when non-zero, says the kernel dropped that many
	// records on CPU because its ring was full (perf event arrays only).
	LostSamples uint64
}

// poller is an epoll instance over the rings plus an eventfd that Close and
// context cancellation use to wake a blocked waiter.
type poller struct {
	epfd   int
	evfd   int
	events []unix.EpollEvent
	closed atomic.Bool // set by Close before it wakes the waiter

	fdMu     sync.Mutex // orders wake against close: no write to a reused fd
	fdClosed bool
}

const wakeTag = -1

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("perfring: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("perfring: eventfd: %w", err)
	}
	p := &poller{epfd: epfd, evfd: evfd}
	if err := p.add(evfd, wakeTag); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *poller) add(fd int, tag int32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: tag}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("perfring: epoll_ctl: %w", err)
	}
	p.events = append(p.events, unix.EpollEvent{})
	return nil
}

// wake makes a blocked wait return. Safe from any goroutine.
func (p *poller) wake() {
	one := [8]byte{1}
	p.fdMu.Lock()
	if !p.fdClosed {
		unix.Write(p.evfd, one[:]) // EAGAIN only if the counter is saturated: still readable
	}
	p.fdMu.Unlock()
}

// wait blocks until a ring is readable, timeoutMs passes (-1: forever),
// ctx is done or the poller is closed. It returns nil when the caller
// should look at the rings again.
func (p *poller) wait(ctx context.Context, timeoutMs int) error {
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, p.wake)
	}
	n, err := unix.EpollWait(p.epfd, p.events, timeoutMs)
	if stop != nil {
		stop()
	}
	if err != nil && err != unix.EINTR {
		return fmt.Errorf("perfring: epoll_wait: %w", err)
	}
	for i := 0; i < n; i++ {
		if p.events[i].Fd == wakeTag {
			var buf [8]byte
			unix.Read(p.evfd, buf[:])
		}
	}
	if p.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

func (p *poller) close() {
	p.fdMu.Lock()
	defer p.fdMu.Unlock()
	if !p.fdClosed {
		p.fdClosed = true
		unix.Close(p.epfd)
		unix.Close(p.evfd)
	}
}

// onlineCPUs returns the online CPUs: the ones that produce records.
func onlineCPUs() ([]int, error) {
	cpus, err := cpuonline.Get()
	if err != nil {
		return nil, fmt.Errorf("perfring: %w", err)
	}
	if len(cpus) == 0 {
		return nil, errors.New("perfring: no online CPU")
	}
	out := make([]int, len(cpus))
	for i, c := range cpus {
		out[i] = int(c)
	}
	return out, nil
}
