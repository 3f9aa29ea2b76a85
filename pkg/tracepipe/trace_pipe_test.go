package tracepipe

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestParseTraceLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want TraceEvent
	}{
		{"        chromium-15581 [000] d... 92783.722567: : Hello, World!",
			TraceEvent{Task: "chromium", PID: "15581", CPU: "000", Flags: "d...", Timestamp: "92783.722567", Function: "", Message: "Hello, World!"}},
		{"            curl-18597 [000] dN..   463.471554: : kretprobe__tcp_v4_connect - pid_tgid 79873506822309\n",
			TraceEvent{Task: "curl", PID: "18597", CPU: "000", Flags: "dN..", Timestamp: "463.471554", Message: "kretprobe__tcp_v4_connect - pid_tgid 79873506822309"}},
		{"      trace_pipe-23553 [000] .... 205825.968557: sys_enter: NR 0 (3, c420098000, 1000, 0, 0, 0)\n",
			TraceEvent{Task: "trace_pipe", PID: "23553", CPU: "000", Flags: "....", Timestamp: "205825.968557", Function: "sys_enter", Message: "NR 0 (3, c420098000, 1000, 0, 0, 0)"}},
		{"      trace_pipe-23553 [000] .... 205825.968557: sys_enter: hello: world\n",
			TraceEvent{Task: "trace_pipe", PID: "23553", CPU: "000", Flags: "....", Timestamp: "205825.968557", Function: "sys_enter", Message: "hello: world"}},
		{"         systemd-1       [001] d...1 223345.525322: bpf_trace_printk: hello world!!!\n",
			TraceEvent{Task: "systemd", PID: "1", CPU: "001", Flags: "d...1", Timestamp: "223345.525322", Function: "bpf_trace_printk", Message: "hello world!!!"}},
		// Current kernels: five flag columns.
		{"          <idle>-0       [001] d.h2. 5270.191541: bpf_trace_printk: tick\n",
			TraceEvent{Task: "<idle>", PID: "0", CPU: "001", Flags: "d.h2.", Timestamp: "5270.191541", Function: "bpf_trace_printk", Message: "tick"}},
		// Task names with dashes, digits and spaces.
		{" kworker/u4:2-ev-123     [000] ..... 1.000001: tracing_mark_write: x\n",
			TraceEvent{Task: "kworker/u4:2-ev", PID: "123", CPU: "000", Flags: ".....", Timestamp: "1.000001", Function: "tracing_mark_write", Message: "x"}},
		{"     Web Content-77-88 [003] ..... 10.5: tracing_mark_write: a b  c \n",
			TraceEvent{Task: "Web Content-77", PID: "88", CPU: "003", Flags: ".....", Timestamp: "10.5", Function: "tracing_mark_write", Message: "a b  c "}},
		// The record-tgid option adds a column.
		{"            bash-1977    (   1977) [000] ..... 12.500000: tracing_mark_write: hi\n",
			TraceEvent{Task: "bash", PID: "1977", CPU: "000", Flags: ".....", Timestamp: "12.500000", Function: "tracing_mark_write", Message: "hi"}},
		{"           <...>-2000    (-------) [001] ..... 12.5: tracing_mark_write: hi",
			TraceEvent{Task: "<...>", PID: "2000", CPU: "001", Flags: ".....", Timestamp: "12.5", Function: "tracing_mark_write", Message: "hi"}},
		// irq-info off: no flags column; four-digit CPU numbers.
		{"            bash-1977    [1023] 12.500000: tracing_mark_write: no flags\r\n",
			TraceEvent{Task: "bash", PID: "1977", CPU: "1023", Timestamp: "12.500000", Function: "tracing_mark_write", Message: "no flags"}},
		// An empty message.
		{"            bash-1977    [000] ..... 12.500000: tracing_mark_write: ",
			TraceEvent{Task: "bash", PID: "1977", CPU: "000", Flags: ".....", Timestamp: "12.500000", Function: "tracing_mark_write"}},
	} {
		got, err := ParseTraceLine(tc.in)
		if err != nil {
			t.Errorf("ParseTraceLine(%q): %v", tc.in, err)
			continue
		}
		tc.want.Raw = strings.TrimRight(tc.in, "\r\n")
		if *got != tc.want {
			t.Errorf("ParseTraceLine(%q) =\n %+v, want\n %+v", tc.in, *got, tc.want)
		}
	}
	for _, in := range []string{
		"",
		"\n",
		"CPU:1 [LOST 12 EVENTS]",
		"hello world",
		"bash-1977 [000] ..... notatime: x: y",
		"bash-x [000] ..... 1.5: x: y",
		"bash-1 [zz] ..... 1.5: x: y",
	} {
		if got, err := ParseTraceLine(in); err == nil || !strings.Contains(err.Error(), "unexpected line") {
			t.Errorf("ParseTraceLine(%q) = %+v, %v; want an error", in, got, err)
		}
	}
}

// waitFor reads events until one satisfies match, calling poke (which
// makes the event happen) every 200ms: other readers of the pipe, in other
// test packages, may consume a line first.
func waitFor(t *testing.T, tp *TracePipe, poke func(), match func(*TraceEvent) bool) *TraceEvent {
	t.Helper()
	events, errs := tp.Channel()
	timeout := time.After(15 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	poke()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event channel closed")
			}
			if match(ev) {
				return ev
			}
		case err := <-errs:
			t.Logf("trace pipe error (ignored): %v", err)
		case <-tick.C:
			poke()
		case <-timeout:
			t.Fatal("event not seen in 15s")
		}
	}
}

// thread is a goroutine locked to its own OS thread, running functions
// sent to it; the thread exits with the goroutine.
type thread struct {
	tid  int
	work chan func()
	quit chan struct{}
}

func newThread() *thread {
	th := &thread{work: make(chan func()), quit: make(chan struct{})}
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is discarded
		th.tid = unix.Gettid()
		close(started)
		for {
			select {
			case f := <-th.work:
				f()
			case <-th.quit:
				return
			}
		}
	}()
	<-started
	return th
}

// do runs f on the thread and waits for it.
func (th *thread) do(f func()) {
	done := make(chan struct{})
	th.work <- func() { f(); close(done) }
	<-done
}

func (th *thread) stop() { close(th.quit) }

func TestTraceMarker(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	tp, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	m, err := os.OpenFile("/sys/kernel/tracing/trace_marker", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	marker := fmt.Sprintf("gobpf-tracepipe-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	th := newThread()
	defer th.stop()
	ev := waitFor(t, tp, func() {
		th.do(func() {
			if _, err := m.WriteString(marker); err != nil {
				t.Errorf("writing trace_marker: %v", err)
			}
		})
	}, func(ev *TraceEvent) bool { return ev.Message == marker })
	if ev.Function != "tracing_mark_write" || ev.PID != strconv.Itoa(th.tid) {
		t.Errorf("event %+v: want function tracing_mark_write, PID %d (the writing thread)", ev, th.tid)
	}
	if _, err := strconv.ParseFloat(ev.Timestamp, 64); err != nil {
		t.Errorf("event %+v: bad timestamp", ev)
	}
	if cpu, err := strconv.Atoi(ev.CPU); err != nil || cpu < 0 || cpu >= runtime.NumCPU() {
		t.Errorf("event %+v: bad CPU", ev)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
}

// tracepointID reads a tracepoint's id from tracefs.
func tracepointID(t *testing.T, name string) uint64 {
	b, err := os.ReadFile("/sys/kernel/tracing/events/" + name + "/id")
	if err != nil {
		t.Fatal(err)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestBPFTracePrintk attaches a tracepoint program calling
// bpf_trace_printk("gobpf tp %d\n", 4242) to one thread's getppid calls
// and reads its line from the pipe.
func TestBPFTracePrintk(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	const (
		magic    = 4242
		expected = "gobpf tp 4242"
	)
	// "gobpf tp %d\n\0\0\0\0" as four little-endian words on the stack.
	fmtStr := []byte("gobpf tp %d\n\x00\x00\x00\x00")
	// A tracepoint program runs for every task that hits the tracepoint
	// (the perf event's task only selects where samples go), so the program
	// itself filters on the thread id.
	th := newThread()
	defer th.stop()
	insns := []bpfsys.Insn{
		{Code: 0x85, Imm: 14},            // call bpf_get_current_pid_tgid
		{Code: 0x67, Regs: 0, Imm: 32},   // r0 <<= 32
		{Code: 0x77, Regs: 0, Imm: 32},   // r0 >>= 32: the thread id
		{Code: 0x55, Imm: int32(th.tid)}, // if r0 != tid goto exit (Off set below)
	}
	for i := 0; i < 16; i += 4 {
		w := int32(uint32(fmtStr[i]) | uint32(fmtStr[i+1])<<8 | uint32(fmtStr[i+2])<<16 | uint32(fmtStr[i+3])<<24)
		insns = append(insns, bpfsys.Insn{Code: 0x62, Regs: 10, Off: int16(-16 + i), Imm: w}) // *(u32 *)(r10 - 16 + i) = w
	}
	insns = append(insns,
		bpfsys.Insn{Code: 0xbf, Regs: 1 | 10<<4},   // r1 = r10
		bpfsys.Insn{Code: 0x07, Regs: 1, Imm: -16}, // r1 += -16
		bpfsys.MovImm(2, 13),                       // r2 = sizeof("gobpf tp %d\n")
		bpfsys.MovImm(3, magic),                    // r3 = 4242
		bpfsys.Insn{Code: 0x85, Imm: 6},            // call bpf_trace_printk
		bpfsys.MovImm(0, 0),                        // exit:
		bpfsys.Exit(),
	)
	insns[3].Off = int16(len(insns) - 2 - 4) // to "r0 = 0", counted from insn 4
	fd, err := bpfsys.ProgLoad(&bpfsys.ProgLoadAttr{Type: bpfsys.BPF_PROG_TYPE_TRACEPOINT, Insns: insns, License: "GPL", Name: "tracepipe_test"})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	id := tracepointID(t, "syscalls/sys_enter_getppid")

	tp, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()

	var pfd int
	th.do(func() {
		attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: id, Sample_type: unix.PERF_SAMPLE_RAW, Sample: 1, Wakeup: 1}
		attr.Size = uint32(unsafe.Sizeof(attr))
		pfd, err = unix.PerfEventOpen(&attr, th.tid, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	})
	if err != nil {
		t.Fatalf("perf_event_open: %v", err)
	}
	defer unix.Close(pfd)
	if err := unix.IoctlSetInt(pfd, unix.PERF_EVENT_IOC_SET_BPF, fd); err != nil {
		t.Fatalf("PERF_EVENT_IOC_SET_BPF: %v", err)
	}
	if err := unix.IoctlSetInt(pfd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		t.Fatalf("PERF_EVENT_IOC_ENABLE: %v", err)
	}
	ev := waitFor(t, tp, func() { th.do(func() { unix.Getppid() }) }, func(ev *TraceEvent) bool {
		return ev.Function == "bpf_trace_printk" && ev.Message == expected
	})
	if ev.PID != strconv.Itoa(th.tid) {
		t.Errorf("event %+v: PID %s, want the traced thread %d", ev, ev.PID, th.tid)
	}
}

// TestCloseIsPrompt: Close returns quickly with nothing to read, ends the
// reader goroutine and closes the channels; ReadLine waiting on another
// goroutine returns ErrClosed.
func TestCloseIsPrompt(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	tp, err := New()
	if err != nil {
		t.Fatal(err)
	}
	events, errs := tp.Channel()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	// Events read before Close may still be queued; then the channels close.
	for range events {
	}
	for range errs {
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	tp2, err := New()
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error)
	go func() {
		for {
			if _, err := tp2.ReadLine(); err != nil {
				res <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	tp2.Close()
	select {
	case err := <-res:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("ReadLine after Close: %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ReadLine still blocked 2s after Close")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("ReadLine returned %v after Close", d)
	}
	// Channel after Close: closed channels.
	ev, er := tp2.Channel()
	if _, ok := <-ev; ok {
		t.Fatal("Channel after Close delivered an event")
	}
	if _, ok := <-er; ok {
		t.Fatal("Channel after Close delivered an error")
	}
}
