// Package tracepipe reads the kernel's trace pipe (trace_pipe in tracefs),
// where bpf_trace_printk output, trace_marker writes and enabled trace
// events appear, one line per event.
//
// Reading consumes: with several readers of the pipe, in this process or
// another, each line goes to only one of them.
package tracepipe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// tracePipePaths are where trace_pipe may be: tracefs's own mount point,
// then its automount under debugfs on older systems.
var tracePipePaths = []string{
	"/sys/kernel/tracing/trace_pipe",
	"/sys/kernel/debug/tracing/trace_pipe",
}

// pollInterval bounds how long a read waits before re-checking for data and
// for Close.
const pollInterval = 100 * time.Millisecond

// TracePipe reads /sys/kernel/tracing/trace_pipe.
type TracePipe struct {
	file   *os.File
	reader *bufio.Reader
	stop   chan struct{}
	done   chan struct{} // closed when the Channel goroutine has ended

	closeOnce sync.Once
	chanOnce  sync.Once
	events    chan *TraceEvent
	errs      chan error
}

// TraceEvent is one line of the trace pipe, split into its fields as
// described under "Output format" in the kernel's ftrace documentation. All
// fields are strings, as in the original gobpf.
type TraceEvent struct {
	Raw       string // the whole line, without its newline
	Task      string // the task's comm, e.g. "bash" or "<idle>"
	PID       string // the thread id
	CPU       string // e.g. "001"
	Flags     string // irqs-off, need-resched, hardirq/softirq, preempt-depth...; "" when not shown
	Timestamp string // seconds, e.g. "5270.191541"
	Function  string // the event, e.g. "bpf_trace_printk"; "" for old-style ": : msg" lines
	Message   string
}

// New opens the trace pipe. It needs root (or tracefs access).
func New() (*TracePipe, error) {
	var errs []error
	for _, p := range tracePipePaths {
		// Non-blocking, so that a read never holds up Close; Go's poller
		// waits for data when the file supports it.
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t := &TracePipe{file: f, stop: make(chan struct{}), done: make(chan struct{})}
		t.reader = bufio.NewReader(pipeReader{t})
		return t, nil
	}
	return nil, fmt.Errorf("tracepipe: %w", errors.Join(errs...))
}

// A line looks like this (with task names right-aligned to 16 columns; the
// "(tgid)" column appears with the record-tgid option, the flags column
// unless irq-info is off):
//
//	  <idle>-0       [001] d.h2. 5270.191541: bpf_trace_printk: hello
//	    bash-1977    (   1977) [000] ..... 12.5: tracing_mark_write: hi
//	chromium-15581 [000] d... 92783.722567: : Hello, World!
var traceLineRegexp = regexp.MustCompile(
	`^\s*(.*?)-(\d+)\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[(\d+)\]\s+(?:(\S+)\s+)?(\d+(?:\.\d+)?):\s(.*?):\s?(.*)$`)

// ParseTraceLine splits one line of the trace pipe into its fields. A line
// that is not an event (such as "CPU:1 [LOST 12 EVENTS]") is an error.
func ParseTraceLine(line string) (*TraceEvent, error) {
	line = strings.TrimRight(line, "\r\n")
	m := traceLineRegexp.FindStringSubmatch(line)
	if m == nil {
		return nil, fmt.Errorf("tracepipe: unexpected line %q", line)
	}
	return &TraceEvent{
		Raw:       line,
		Task:      m[1],
		PID:       m[2],
		CPU:       m[3],
		Flags:     m[4],
		Timestamp: m[5],
		Function:  m[6],
		Message:   m[7],
	}, nil
}

// ErrClosed is returned by ReadLine once the pipe is closed.
var ErrClosed = errors.New("tracepipe: closed")

// pipeReader reads the non-blocking pipe, waiting for data until the pipe
// is closed.
type pipeReader struct{ t *TracePipe }

func (r pipeReader) Read(p []byte) (int, error) {
	f := r.t.file
	for {
		select {
		case <-r.t.stop:
			return 0, ErrClosed
		default:
		}
		// With the poller, a deadline bounds the wait (Close also wakes it);
		// without, reads fail at once with EAGAIN and we sleep instead.
		polled := f.SetReadDeadline(time.Now().Add(pollInterval)) == nil
		n, err := f.Read(p)
		if n > 0 {
			return n, nil
		}
		switch {
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case errors.Is(err, os.ErrClosed):
			return 0, ErrClosed
		case errors.Is(err, unix.EAGAIN), err == io.EOF:
			// EOF: tracing is off and the buffer drained; keep waiting.
			if polled && err != io.EOF {
				continue
			}
			select {
			case <-r.t.stop:
				return 0, ErrClosed
			case <-time.After(pollInterval / 4):
			}
		default:
			return 0, fmt.Errorf("tracepipe: %w", err)
		}
	}
}

// ReadLine waits for the next line of the pipe and returns it parsed. It
// returns ErrClosed once the pipe is closed. Do not mix it with Channel.
func (t *TracePipe) ReadLine() (*TraceEvent, error) {
	line, err := t.reader.ReadString('\n')
	if err != nil {
		return nil, err
	}
	return ParseTraceLine(line)
}

// Channel starts reading the pipe in a goroutine and returns channels of
// its events and of its errors (unparsable lines, read failures). Receive
// from both: the reader waits until its event or error is taken. Calling
// Channel again returns the same channels. Close stops the goroutine and
// closes both channels (after Close, Channel returns closed channels).
func (t *TracePipe) Channel() (<-chan *TraceEvent, <-chan error) {
	t.chanOnce.Do(func() {
		t.events = make(chan *TraceEvent)
		t.errs = make(chan error)
		go t.run()
	})
	return t.events, t.errs
}

func (t *TracePipe) run() {
	defer close(t.done)
	defer close(t.errs)
	defer close(t.events)
	for {
		ev, err := t.ReadLine()
		if errors.Is(err, ErrClosed) {
			return
		}
		if err != nil {
			select {
			case t.errs <- err:
			case <-t.stop:
				return
			}
			continue
		}
		select {
		case t.events <- ev:
		case <-t.stop:
			return
		}
	}
}

// Close stops reading, waits for the Channel goroutine (if any) to end and
// closes the pipe. It returns promptly even when no line arrives. Calling it
// again does nothing.
func (t *TracePipe) Close() error {
	var err error
	t.closeOnce.Do(func() {
		close(t.stop)
		err = t.file.Close() // wakes a read waiting in the poller
		// If Channel never ran, make it return closed channels from now on.
		t.chanOnce.Do(func() {
			t.events = make(chan *TraceEvent)
			t.errs = make(chan error)
			close(t.events)
			close(t.errs)
			close(t.done)
		})
		<-t.done
	})
	return err
}
