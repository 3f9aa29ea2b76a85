package elf

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
)

// Counter slots of tests/elf/modern.c.
const (
	mTP = iota
	mTracepoint
	mRawTP
	mRawTracepoint
	mXDP
	mTCXIn
	mTCXOut
	mSocket
	mSkbIn
	mSkbOut
	mSockCreate
	mConnect4
	mConnect6
	mBind4
	mBind6
	mSendmsg4
	mSendmsg6
	mRecvmsg4
	mRecvmsg6
	mGetsockopt
	mSetsockopt
	mSysctl
	mDev
	mSockops
	mSkMsg
	mSkSkb
	mPerf
	mTC
	mMax = 32
)

// loadModern loads tests/elf/modern.c with this process as target.
func loadModern(t *testing.T, tgid uint32, port uint16) *Module {
	t.Helper()
	m := NewModule(modernObject(t))
	if err := m.SetConstant("target_tgid", tgid); err != nil {
		t.Fatal(err)
	}
	if err := m.SetConstant("net_port", port); err != nil {
		t.Fatal(err)
	}
	if err := m.Load(nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func counts(t *testing.T, m *Module) [mMax]uint64 {
	t.Helper()
	var c [mMax]uint64
	if err := m.ReadVariable("counts", &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestModernSectionTypes loads every section family of modern.c and checks
// the program type the kernel reports, and that each program is reachable
// by function and section name.
func TestModernSectionTypes(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	m := loadModern(t, uint32(os.Getpid()), 1)
	want := map[string]bpfsys.ProgType{
		"tp_getpgid": 5, "tracepoint_getppid": 5, "rawtp_sys_enter": 17, "rawtracepoint_sys_enter": 17,
		"uprobe_getpid": 2, "uretprobe_getpid": 2, "kprobe_nanosleep": 2, "kretprobe_nanosleep": 2,
		"ksyscall_getpid": 2, "kretsyscall_getpid": 2, "usdt_setjmp": 2, "perf_sample": 7,
		"xdp_count": 6, "tcx_in": 3, "tcx_out": 3, "tc_count": 3, "classifier_pass": 3, "socket_count": 1,
		"skb_in": 8, "skb_out": 8, "sock_create": 9, "connect4": 18, "connect6": 18, "bind4": 18, "bind6": 18,
		"sendmsg4": 18, "sendmsg6": 18, "recvmsg4": 18, "recvmsg6": 18, "getsockopt_prog": 25,
		"setsockopt_prog": 25, "sysctl_prog": 23, "dev_prog": 15, "sockops_prog": 13, "sk_msg_prog": 16,
		"sk_skb_prog": 14,
	}
	names := m.Programs()
	if len(names) != len(want) {
		t.Errorf("Programs() = %d programs %v, want %d", len(names), names, len(want))
	}
	for fn, typ := range want {
		p, err := m.Program(fn)
		if err != nil {
			t.Errorf("Program(%q): %v", fn, err)
			continue
		}
		if p.Type() != uint32(typ) {
			t.Errorf("%s: Type() = %d, want %d", fn, p.Type(), typ)
		}
		info, err := bpfsys.GetProgInfo(p.Fd())
		if err != nil {
			t.Fatal(err)
		}
		if info.Type != typ {
			t.Errorf("%s (%s): kernel says type %d, want %d", fn, p.Section, info.Type, typ)
		}
		if q, err := m.Program(p.Section); err != nil || q != p {
			t.Errorf("Program(%q) = %v, %v; want the program of %s", p.Section, q, err, fn)
		}
	}
	// Expected attach types libbpf gives (those the kernel needs at load).
	for fn, at := range map[string]uint32{"connect4": 10, "connect6": 11, "bind4": 8, "sendmsg6": 15,
		"recvmsg4": 19, "getsockopt_prog": 21, "setsockopt_prog": 22, "sysctl_prog": 18, "dev_prog": 6,
		"sock_create": 2, "skb_out": 1, "sk_msg_prog": 7, "sk_skb_prog": 5, "tcx_out": 47, "xdp_count": 37} {
		p, _ := m.Program(fn)
		if p != nil && p.ExpectedAttachType() != at {
			t.Errorf("%s: expected attach type %d, want %d", fn, p.ExpectedAttachType(), at)
		}
	}
	if _, err := m.Program("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Program(nope) = %v, want ErrNotFound", err)
	}
	// gobpf's typed views still exist for the families it knows.
	if m.TracepointProgram("tracepoint/syscalls/sys_enter_getppid") == nil || m.SocketFilter("socket") == nil {
		t.Error("gobpf typed programs missing")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if p, err := m.Program("tp_getpgid"); !errors.Is(err, ErrClosed) {
		t.Errorf("Program after Close = %v, %v; want ErrClosed", p, err)
	}
}

// TestModernGlobalData: the .rodata pid filter set from Go decides what the
// tracepoint counts, the .bss counter read from Go equals the calls made,
// .data's initial value is visible and writable, and a const set with the
// wrong Go type is refused.
func TestModernGlobalData(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	const n = 25
	m := loadModern(t, uint32(os.Getpid()), 1)
	other := loadModern(t, 1, 1) // filters on init's pid: must count nothing
	var d uint64
	if err := m.ReadVariable("data_init", &d); err != nil || d != 42 {
		t.Fatalf("data_init = %d, %v; want 42", d, err)
	}
	var g [6]byte
	if err := m.ReadVariable("greeting", &g); err != nil || string(g[:]) != "hello\x00" {
		t.Fatalf("greeting = %q, %v", g, err)
	}
	if err := m.WriteVariable("greeting", "bye"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("writing .rodata: %v, want a read-only error", err)
	}
	var links []*Link
	for _, mod := range []*Module{m, other} {
		p, err := mod.Program("tp_getpgid")
		if err != nil {
			t.Fatal(err)
		}
		l, err := p.Attach()
		if err != nil {
			t.Fatal(err)
		}
		links = append(links, l)
	}
	for i := 0; i < n; i++ {
		unix.Getpgid(0)
	}
	if c := counts(t, m); c[mTP] != n {
		t.Errorf("tp counter = %d, want %d", c[mTP], n)
	}
	if c := counts(t, other); c[mTP] != 0 {
		t.Errorf("tp counter of the module filtering on pid 1 = %d, want 0", c[mTP])
	}
	// .data written from Go changes what the program adds.
	if err := m.WriteVariable("step", uint32(3)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		unix.Getpgid(0)
	}
	if c := counts(t, m); c[mTP] != n+3*n {
		t.Errorf("tp counter after step=3: %d, want %d", c[mTP], 4*n)
	}
	// Closing the link detaches: no more counts.
	if err := links[0].Close(); err != nil {
		t.Fatal(err)
	}
	unix.Getpgid(0)
	if c := counts(t, m); c[mTP] != 4*n {
		t.Errorf("tp counter after the link closed: %d, want %d", c[mTP], 4*n)
	}
	for _, l := range links {
		if err := l.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}

	// Wrong types and names are refused before load.
	w := NewModule(modernObject(t))
	defer w.Close()
	for _, tc := range []struct {
		name  string
		value any
		want  string
	}{
		{"target_tgid", int64(1), "is 4 bytes in the object; a Go int64 is 8 bytes"},
		{"target_tgid", "x", "integer in the object; cannot set it from a Go string"},
		{"target_tgid", 1.5, "cannot set it from a Go float64"},
		{"greeting", "much too long", "does not fit"},
		{"no_such_var", 1, "no such global variable"},
	} {
		err := w.SetConstant(tc.name, tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetConstant(%q, %#v) = %v, want an error containing %q", tc.name, tc.value, err, tc.want)
		}
	}
	if err := w.SetConstant("no_such_var", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown variable: %v, want ErrNotFound", err)
	}
}

// TestModernRingBuf: a ring buffer map read from elf delivers exactly the
// records the program submitted (one per getppid call of this process).
func TestModernRingBuf(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	const n = 100
	m := loadModern(t, uint32(os.Getpid()), 1)
	rb, err := m.OpenRingBuf("events")
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Program("tracepoint/syscalls/sys_enter_getppid")
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Attach()
	if err != nil {
		t.Fatal(err)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	wantComm := strings.TrimSpace(string(comm))
	for i := 0; i < n; i++ {
		unix.Getppid()
	}
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	check := func(i int, raw []byte) {
		t.Helper()
		if len(raw) != 24 {
			t.Fatalf("record %d: %d bytes, want 24", i, len(raw))
		}
		tgid, seq := binary.NativeEndian.Uint32(raw), binary.NativeEndian.Uint32(raw[4:])
		c := string(raw[8:])
		c = c[:strings.IndexByte(c+"\x00", 0)]
		if tgid != uint32(os.Getpid()) || seq != uint32(i) || c != wantComm {
			t.Fatalf("record %d = tgid %d seq %d comm %q; want %d %d %q", i, tgid, seq, c, os.Getpid(), i, wantComm)
		}
	}
	i := 0
	for ; i < n/2; i++ {
		rec, err := rb.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		check(i, rec.RawSample)
	}
	batch := make([]RingBufRecord, 8)
	for i < n {
		k, err := rb.ReadBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range batch[:k] {
			check(i, r.RawSample)
			i++
		}
	}
	// Nothing more: a read times out.
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := rb.Read(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("extra read: %v, want a deadline", err)
	}
	// Channel API, then Close unblocks everything.
	ch := make(chan []byte)
	if err := rb.Start(ch); err != nil {
		t.Fatal(err)
	}
	l2, err := p.Attach()
	if err != nil {
		t.Fatal(err)
	}
	unix.Getppid()
	select {
	case raw := <-ch:
		check(n, raw)
	case <-time.After(10 * time.Second):
		t.Fatal("no record on the channel")
	}
	l2.Close()
	if err := rb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Read(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
}
