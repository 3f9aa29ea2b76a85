package elf

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
)

// Counter slots of tests/elf/elf_test.c.
const (
	cTracepoint = 0
	cRawTP      = 1
	cUprobe     = 2
	cUretprobe  = 3
	cSockPass   = 4
	cSockDrop   = 5
	cCgPass     = 6
	cCgDrop     = 7
	cXDPPass    = 8
	cXDPDrop    = 9
	cSockCreate = 10
	cSockDenied = 11
	cKprobe     = 12
	cKretprobe  = 13
	cUretValue  = 14
	cTail       = 15
)

var testParams = map[string]SectionParams{
	"maps/pinned_custom": {PinPath: "gobpf_elf_test_custom/pinned_custom"},
}

var unpinAll = map[string]CloseOptions{
	"maps/pinned_global": {Unpin: true},
	"maps/pinned_custom": {Unpin: true},
	"maps/pinned_object": {Unpin: true},
}

// cleanPins removes what loading the test object pins.
func cleanPins(t testing.TB) {
	t.Helper()
	spec, err := parseFile(t, testObject(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"/sys/fs/bpf/gobpf_elf_test",
		"/sys/fs/bpf/gobpf_elf_test_custom",
		"/sys/fs/bpf/gobpf/" + spec.ID,
	} {
		if err := os.RemoveAll(p); err != nil {
			t.Error(err)
		}
	}
	os.Remove("/sys/fs/bpf/gobpf") // only if empty
}

func loadTestModule(t *testing.T) *Module {
	t.Helper()
	m := NewModule(testObject(t))
	if err := m.Load(testParams); err != nil {
		t.Fatal(err)
	}
	return m
}

func counter(t *testing.T, m *Module, idx uint32) uint64 {
	t.Helper()
	var v uint64
	if err := m.LookupElement(m.Map("counters"), unsafe.Pointer(&idx), unsafe.Pointer(&v)); err != nil {
		t.Fatal(err)
	}
	return v
}

func setConfig(t *testing.T, m *Module, idx, val uint32) {
	t.Helper()
	if err := m.UpdateElement(m.Map("config"), unsafe.Pointer(&idx), unsafe.Pointer(&val), 0); err != nil {
		t.Fatal(err)
	}
}

// waitCounter waits until counter idx reaches want (or a deadline) and
// then checks it is exactly want.
func waitCounter(t *testing.T, m *Module, idx uint32, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for counter(t, m, idx) < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := counter(t, m, idx); got != want {
		t.Errorf("counter %d = %d, want %d", idx, got, want)
	}
}

func TestModule(t *testing.T) {
	cleanPins(t)
	defer cleanPins(t)
	defer testutil.CheckLeaks(t)()
	m := loadTestModule(t)
	defer func() {
		if err := m.CloseExt(unpinAll); err != nil {
			t.Errorf("CloseExt: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}()
	setConfig(t, m, 0, uint32(os.Getpid()))
	setConfig(t, m, 1, uint32(unix.SYS_GETPPID))

	t.Run("Iterate", func(t *testing.T) { testIterate(t, m) })
	t.Run("Tracepoints", func(t *testing.T) { testTracepoints(t, m) })
	t.Run("Uprobe", func(t *testing.T) { testUprobe(t, m) })
	t.Run("SocketFilter", func(t *testing.T) { testSocketFilter(t, m) })
	t.Run("TestRun", func(t *testing.T) { testProgTestRun(t, m) })
	t.Run("Maps", func(t *testing.T) { testMaps(t, m) })
	t.Run("KprobeNotSupported", func(t *testing.T) { testKprobeNotSupported(t, m) })
	t.Run("Kprobes", func(t *testing.T) { testKprobes(t, m) })
	t.Run("Cgroup", func(t *testing.T) { testCgroup(t, m) })
	t.Run("XDP", func(t *testing.T) { testXDP(t, m) })
}

func testIterate(t *testing.T, m *Module) {
	var got []string
	for p := range m.IterKprobes() {
		got = append(got, p.Name)
	}
	for p := range m.IterUprobes() {
		got = append(got, p.Name)
	}
	for p := range m.IterTracepointProgram() {
		got = append(got, p.Name)
	}
	for p := range m.IterRawTracepointProgram() {
		got = append(got, p.Name)
	}
	for p := range m.IterSocketFilter() {
		got = append(got, p.Name)
	}
	for p := range m.IterCgroupProgram() {
		got = append(got, p.Name)
	}
	for p := range m.IterXDPProgram() {
		got = append(got, p.Name)
	}
	for p := range m.IterSchedProgram() {
		got = append(got, p.Name)
	}
	want := []string{
		"kprobe/do_sys_openat2", "kretprobe/do_sys_openat2",
		"uprobe/target_func", "uretprobe/target_func",
		"tracepoint/syscalls/sys_enter_getppid", "raw_tracepoint/sys_enter",
		"socket/drop_d", "socket/tail_caller", "socket/tail_target",
		"cgroup/skb", "cgroup/sock", "xdp/udp_drop",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("programs:\n got %v\nwant %v", got, want)
	}
	var maps []string
	for mp := range m.IterMaps() {
		maps = append(maps, mp.Name)
		if mp.Fd() < 0 {
			t.Errorf("map %s has fd %d", mp.Name, mp.Fd())
		}
		info, err := bpfsys.GetMapInfo(mp.Fd())
		if err != nil {
			t.Fatal(err)
		}
		d := mp.Def()
		if uint32(info.Type) != d.Type || info.KeySize != d.KeySize || info.ValueSize != d.ValueSize || info.MaxEntries != d.MaxEntries {
			t.Errorf("map %s: kernel says %+v, def %+v", mp.Name, info, d)
		}
	}
	wantMaps := "config counters events hash_map jmp_table lpm_map lru_map percpu_map pinned_custom pinned_global pinned_object"
	if strings.Join(maps, " ") != wantMaps {
		t.Errorf("maps: %v, want %s", maps, wantMaps)
	}
	type fder interface{ Fd() int }
	for name, p := range map[string]fder{
		"tp_getppid":      m.TracepointProgram("tracepoint/syscalls/sys_enter_getppid"),
		"raw_sys_enter":   m.RawTracepointProgram("raw_tracepoint/sys_enter"),
		"kprobe_openat2":  m.Kprobe("kprobe/do_sys_openat2"),
		"uprobe_target":   m.UprobeProgram("uprobe/target_func"),
		"socket_drop_d":   m.SocketFilter("socket/drop_d"),
		"cgroup_skb_filt": m.CgroupProgram("cgroup/skb"),
		"xdp_udp_drop":    m.XDPProgram("xdp/udp_drop"),
	} {
		info, err := bpfsys.GetProgInfo(p.Fd())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if info.Name != name {
			t.Errorf("program name %q, want %q", info.Name, name)
		}
	}
	if m.Kprobe("kprobe/nope") != nil || m.Map("nope") != nil || m.XDPProgram("nope") != nil || m.CgroupProgram("nope") != nil {
		t.Error("lookup of a missing name returned non-nil")
	}
}

type testEvent struct {
	Tgid  uint32
	Seq   uint32
	Magic uint64
	Tag   [8]byte
}

func testTracepoints(t *testing.T, m *Module) {
	recv := make(chan []byte, 16)
	lost := make(chan uint64, 16)
	pm, err := InitPerfMap(m, "events", recv, lost)
	if err != nil {
		t.Fatal(err)
	}
	pm.PollStart()
	for _, sec := range []string{"tracepoint/syscalls/sys_enter_getppid", "raw_tracepoint/sys_enter"} {
		if err := m.EnableTracepoint(sec); err != nil {
			t.Fatal(err)
		}
		if err := m.EnableTracepoint(sec); err == nil || !strings.Contains(err.Error(), "already enabled") {
			t.Errorf("second EnableTracepoint(%s): %v", sec, err)
		}
	}
	if err := m.EnableTracepoint("tracepoint/sched/nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("EnableTracepoint of a missing section: %v", err)
	}
	tp0, raw0 := counter(t, m, cTracepoint), counter(t, m, cRawTP)
	const n = 5
	for i := 0; i < n; i++ {
		unix.Getppid()
	}
	if got := counter(t, m, cTracepoint) - tp0; got != n {
		t.Errorf("tracepoint counted %d getppid calls, want %d", got, n)
	}
	if got := counter(t, m, cRawTP) - raw0; got != n {
		t.Errorf("raw tracepoint counted %d getppid calls, want %d", got, n)
	}
	var evs []testEvent
	timeout := time.After(5 * time.Second)
	for len(evs) < n {
		select {
		case b := <-recv:
			if len(b) != 28 { // 24 bytes, padded so that len+4 is a multiple of 8
				t.Fatalf("event of %d bytes: %x", len(b), b)
			}
			var e testEvent
			if err := binary.Read(bytes.NewReader(b), binary.LittleEndian, &e); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e)
		case l := <-lost:
			t.Fatalf("lost %d events", l)
		case <-timeout:
			t.Fatalf("got %d events, want %d", len(evs), n)
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
	tag := [8]byte{'g', 'o', 'b', 'p', 'f', '!'}
	for i, e := range evs {
		want := testEvent{Tgid: uint32(os.Getpid()), Seq: uint32(tp0) + uint32(i) + 1, Magic: 0xfeedfacecafebeef, Tag: tag}
		if e != want {
			t.Errorf("event %d = %+v, want %+v", i, e, want)
		}
		// The program also stored the event in hash_map at key seq.
		var got testEvent
		key := want.Seq
		if err := m.LookupElement(m.Map("hash_map"), unsafe.Pointer(&key), unsafe.Pointer(&got)); err != nil || got != want {
			t.Errorf("hash_map[%d] = %+v, %v; want %+v", key, got, err, want)
		}
	}
	// Walk hash_map with LookupNextElement.
	var keys []uint32
	var key, next uint32
	var val testEvent
	var kp unsafe.Pointer // nil: start at the first key
	for {
		ok, err := m.LookupNextElement(m.Map("hash_map"), kp, unsafe.Pointer(&next), unsafe.Pointer(&val))
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if val.Seq != next {
			t.Errorf("hash_map[%d].Seq = %d", next, val.Seq)
		}
		keys = append(keys, next)
		key = next
		kp = unsafe.Pointer(&key)
	}
	if len(keys) != n {
		t.Errorf("hash_map has keys %v, want %d", keys, n)
	}
	pm.PollStop()
	if _, ok := <-recv; ok {
		t.Error("receive channel not closed by PollStop")
	}
	if _, ok := <-lost; ok {
		t.Error("lost channel not closed by PollStop")
	}
}

// symbolFileOffset returns the file offset of symbol sym in binary path.
func symbolFileOffset(t *testing.T, path, sym string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name != sym {
			continue
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && s.Value >= p.Vaddr && s.Value < p.Vaddr+p.Memsz {
				return s.Value - p.Vaddr + p.Off
			}
		}
	}
	t.Fatalf("symbol %s not found in %s", sym, path)
	return 0
}

func testUprobe(t *testing.T, m *Module) {
	bin := testutil.BuildC(t, `#include <stdio.h>
int target_func(int x) { return x * 2; }
int main(void) {
	int s = 0;
	for (int i = 1; i <= 3; i++)
		s += target_func(i);
	printf("%d\n", s);
	return 0;
}
`)
	off := symbolFileOffset(t, bin, "target_func")
	if err := AttachUprobe(m.UprobeProgram("uprobe/target_func"), bin, off); err != nil {
		t.Fatal(err)
	}
	if err := AttachUprobe(m.Uprobe("uretprobe/target_func"), bin, off); err != nil {
		t.Fatal(err)
	}
	if err := AttachUprobe(m.Uprobe("uprobe/target_func"), bin, off); err == nil || !strings.Contains(err.Error(), "already attached") {
		t.Errorf("second AttachUprobe: %v", err)
	}
	u0, r0 := counter(t, m, cUprobe), counter(t, m, cUretprobe)
	if out := strings.TrimSpace(testutil.Run(t, bin)); out != "12" {
		t.Fatalf("test program printed %q", out)
	}
	if got := counter(t, m, cUprobe) - u0; got != 3 {
		t.Errorf("uprobe counted %d calls, want 3", got)
	}
	if got := counter(t, m, cUretprobe) - r0; got != 3 {
		t.Errorf("uretprobe counted %d returns, want 3", got)
	}
	if got := counter(t, m, cUretValue); got != 6 {
		t.Errorf("last return value %d, want 6", got)
	}
}

func testSocketFilter(t *testing.T, m *Module) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	sf := m.SocketFilter("socket/drop_d")
	if err := AttachSocketFilter(sf, fds[1]); err != nil {
		t.Fatal(err)
	}
	p0, d0 := counter(t, m, cSockPass), counter(t, m, cSockDrop)
	send := func(msgs ...string) {
		for _, s := range msgs {
			if _, err := unix.Write(fds[0], []byte(s)); err != nil {
				t.Fatal(err)
			}
		}
	}
	recvAll := func() []string {
		var out []string
		buf := make([]byte, 64)
		for {
			n, _, err := unix.Recvfrom(fds[1], buf, unix.MSG_DONTWAIT)
			if err == unix.EAGAIN {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(buf[:n]))
		}
	}
	send("P1", "D1", "P2", "D2", "P3")
	if got := strings.Join(recvAll(), ","); got != "P1,P2,P3" {
		t.Errorf("received %q through the filter, want P1,P2,P3", got)
	}
	if p, d := counter(t, m, cSockPass)-p0, counter(t, m, cSockDrop)-d0; p != 3 || d != 2 {
		t.Errorf("filter passed %d and dropped %d, want 3 and 2", p, d)
	}
	if err := DetachSocketFilter(sf, fds[1]); err != nil {
		t.Fatal(err)
	}
	send("D3")
	if got := strings.Join(recvAll(), ","); got != "D3" {
		t.Errorf("received %q without the filter, want D3", got)
	}
	if d := counter(t, m, cSockDrop) - d0; d != 2 {
		t.Errorf("detached filter still ran (%d drops)", d)
	}
}

// udpPacket builds an Ethernet/IPv4/UDP frame to dport.
func udpPacket(dport uint16, payload string) []byte {
	b := make([]byte, 14+20+8+len(payload))
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[8], ip[9] = 64, 17
	copy(ip[12:], []byte{10, 0, 0, 1})
	copy(ip[16:], []byte{10, 0, 0, 2})
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 12345)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload)
	return b
}

func testRun(t *testing.T, fd int, data []byte) uint32 {
	t.Helper()
	a := &bpfsys.TestRunAttr{ProgFd: fd, DataIn: data, Repeat: 1}
	if err := bpfsys.ProgTestRun(a); err != nil {
		t.Fatal(err)
	}
	return a.Retval
}

func testProgTestRun(t *testing.T, m *Module) {
	eth := make([]byte, 14)
	sock := m.SocketFilter("socket/drop_d").Fd()
	if r := testRun(t, sock, append(append([]byte(nil), eth...), "Dropped!"...)); r != 0 {
		t.Errorf("socket filter on D...: %d, want 0", r)
	}
	if r := testRun(t, sock, append(append([]byte(nil), eth...), "Passed!!"...)); r != 8 {
		t.Errorf("socket filter on P...: %d, want 8 (the length)", r)
	}

	const dropPort = 9999
	setConfig(t, m, 2, dropPort)
	xdp := m.XDPProgram("xdp/udp_drop").Fd()
	p0, d0 := counter(t, m, cXDPPass), counter(t, m, cXDPDrop)
	if r := testRun(t, xdp, udpPacket(dropPort, "x")); r != 1 {
		t.Errorf("XDP on UDP to %d: %d, want XDP_DROP (1)", dropPort, r)
	}
	if r := testRun(t, xdp, udpPacket(53, "x")); r != 2 {
		t.Errorf("XDP on UDP to 53: %d, want XDP_PASS (2)", r)
	}
	if p, d := counter(t, m, cXDPPass)-p0, counter(t, m, cXDPDrop)-d0; p != 1 || d != 1 {
		t.Errorf("XDP counted %d passes and %d drops, want 1 and 1", p, d)
	}

	// Tail call through the BTF-defined prog array.
	caller := m.SocketFilter("socket/tail_caller").Fd()
	target := m.SocketFilter("socket/tail_target").Fd()
	jmp := m.Map("jmp_table")
	var key, val uint32 = 0, uint32(target)
	if err := m.UpdateElement(jmp, unsafe.Pointer(&key), unsafe.Pointer(&val), 0); err != nil {
		t.Fatal(err)
	}
	var id uint32
	if err := m.LookupElement(jmp, unsafe.Pointer(&key), unsafe.Pointer(&id)); err != nil {
		t.Fatal(err)
	}
	if info, err := bpfsys.GetProgInfo(target); err != nil || info.ID != id {
		t.Errorf("prog array holds id %d, target is %+v (%v)", id, info, err)
	}
	t0 := counter(t, m, cTail)
	if r := testRun(t, caller, append(eth, "tail"...)); r != 7 {
		t.Errorf("tail call returned %d, want 7", r)
	}
	if got := counter(t, m, cTail) - t0; got != 1 {
		t.Errorf("tail target ran %d times, want 1", got)
	}
	if err := m.DeleteElement(jmp, unsafe.Pointer(&key)); err != nil {
		t.Fatal(err)
	}
	if r := testRun(t, caller, append(eth, "tail"...)); r != 3 {
		t.Errorf("empty tail call returned %d, want 3", r)
	}
}

func testMaps(t *testing.T, m *Module) {
	// Hash: create-only, delete, missing keys.
	h := m.Map("hash_map")
	k, v := uint32(1000), testEvent{Seq: 1000}
	if err := m.UpdateElement(h, unsafe.Pointer(&k), unsafe.Pointer(&v), bpfsys.BPF_NOEXIST); err != nil {
		t.Fatal(err)
	}
	if err := m.UpdateElement(h, unsafe.Pointer(&k), unsafe.Pointer(&v), bpfsys.BPF_NOEXIST); !errors.Is(err, unix.EEXIST) {
		t.Errorf("BPF_NOEXIST on an existing key: %v", err)
	}
	if err := m.DeleteElement(h, unsafe.Pointer(&k)); err != nil {
		t.Fatal(err)
	}
	if err := m.LookupElement(h, unsafe.Pointer(&k), unsafe.Pointer(&v)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("lookup of a deleted key: %v", err)
	}
	if err := m.DeleteElement(h, unsafe.Pointer(&k)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("delete of a deleted key: %v", err)
	}

	// Per-CPU array: one value per possible CPU.
	ncpu, err := possibleCPUs()
	if err != nil {
		t.Fatal(err)
	}
	pc := m.Map("percpu_map")
	vals := make([]uint64, ncpu)
	for i := range vals {
		vals[i] = uint64(100 + i)
	}
	k = 1
	if err := m.UpdateElement(pc, unsafe.Pointer(&k), unsafe.Pointer(&vals[0]), 0); err != nil {
		t.Fatal(err)
	}
	got := make([]uint64, ncpu)
	if err := m.LookupElement(pc, unsafe.Pointer(&k), unsafe.Pointer(&got[0])); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != vals[i] {
			t.Errorf("percpu_map[1] on cpu %d = %d, want %d", i, got[i], vals[i])
		}
	}

	// LRU hash of 4 entries: 8 inserts keep at most 4, the latest included.
	lru := m.Map("lru_map")
	for i := uint64(1); i <= 8; i++ {
		val := uint32(i * 10)
		if err := m.UpdateElement(lru, unsafe.Pointer(&i), unsafe.Pointer(&val), 0); err != nil {
			t.Fatal(err)
		}
	}
	var lk, lnext uint64
	var lv uint32
	var lp unsafe.Pointer
	n := 0
	for {
		ok, err := m.LookupNextElement(lru, lp, unsafe.Pointer(&lnext), unsafe.Pointer(&lv))
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if uint64(lv) != lnext*10 {
			t.Errorf("lru_map[%d] = %d", lnext, lv)
		}
		n++
		lk = lnext
		lp = unsafe.Pointer(&lk)
	}
	if n == 0 || n > 4 {
		t.Errorf("lru_map holds %d entries, want 1..4", n)
	}
	lk = 8
	if err := m.LookupElement(lru, unsafe.Pointer(&lk), unsafe.Pointer(&lv)); err != nil || lv != 80 {
		t.Errorf("lru_map[8] = %d, %v", lv, err)
	}

	// LPM trie: longest prefix wins.
	type lpmKey struct {
		Prefix uint32
		Addr   [4]byte
	}
	lpm := m.Map("lpm_map")
	for _, e := range []struct {
		k lpmKey
		v uint32
	}{{lpmKey{8, [4]byte{10}}, 1}, {lpmKey{16, [4]byte{10, 1}}, 2}} {
		if err := m.UpdateElement(lpm, unsafe.Pointer(&e.k), unsafe.Pointer(&e.v), 0); err != nil {
			t.Fatal(err)
		}
	}
	for addr, want := range map[[4]byte]uint32{{10, 1, 2, 3}: 2, {10, 2, 0, 1}: 1, {11, 0, 0, 1}: 0} {
		key := lpmKey{32, addr}
		var val uint32
		err := m.LookupElement(lpm, unsafe.Pointer(&key), unsafe.Pointer(&val))
		if want == 0 {
			if !errors.Is(err, unix.ENOENT) {
				t.Errorf("lpm lookup %v: %d, %v; want ENOENT", addr, val, err)
			}
			continue
		}
		if err != nil || val != want {
			t.Errorf("lpm lookup %v: %d, %v; want %d", addr, val, err, want)
		}
	}

	// Nil and closed maps give errors, not crashes.
	if err := m.UpdateElement(nil, nil, nil, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateElement(nil map): %v", err)
	}
}

func testKprobeNotSupported(t *testing.T, m *Module) {
	if testutil.HaveKprobes() {
		t.Skip("the kernel has kprobes")
	}
	done := make(chan error, 2)
	go func() {
		done <- m.EnableKprobe("kprobe/do_sys_openat2", 0)
		done <- m.EnableKprobes(0)
	}()
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "CONFIG_KPROBES") {
				t.Errorf("enabling a kprobe without kprobes: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("EnableKprobe hangs")
		}
	}
	if err := m.EnableKprobe("kprobe/nope", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("EnableKprobe of a missing section: %v", err)
	}
}

func testKprobes(t *testing.T, m *Module) {
	testutil.RequireKprobes(t)
	if err := m.EnableKprobes(0); err != nil {
		t.Fatal(err)
	}
	if err := m.EnableKprobe("kprobe/do_sys_openat2", 0); err == nil {
		t.Error("enabling a kprobe twice succeeded")
	}
	k0, r0 := counter(t, m, cKprobe), counter(t, m, cKretprobe)
	const n = 4
	for i := 0; i < n; i++ {
		fd, err := unix.Open("/proc/self/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	if got := counter(t, m, cKprobe) - k0; got != n {
		t.Errorf("kprobe counted %d opens, want %d", got, n)
	}
	if got := counter(t, m, cKretprobe) - r0; got != n {
		t.Errorf("kretprobe counted %d opens, want %d", got, n)
	}
}

// cgroup2Root finds (or mounts) the cgroup2 hierarchy.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	dir := t.TempDir()
	if err := unix.Mount("none", dir, "cgroup2", 0, ""); err != nil {
		t.Fatalf("mounting cgroup2: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func testCgroup(t *testing.T, m *Module) {
	dir := filepath.Join(cgroup2Root(t), fmt.Sprintf("gobpf-elf-test-%d", os.Getpid()))
	os.Remove(dir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for i := 0; i < 100; i++ {
			if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cannot remove cgroup %s", dir)
	}()
	skb, sock := m.CgroupProgram("cgroup/skb"), m.CgroupProgram("cgroup/sock")
	if err := AttachCgroupProgram(skb, dir, EgressType); err != nil {
		t.Fatal(err)
	}
	if err := AttachCgroupProgram(sock, dir, SockCreateType); err != nil {
		t.Fatal(err)
	}
	pass, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pass.Close()
	drop, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer drop.Close()
	passPort, dropPort := pass.LocalAddr().(*net.UDPAddr).Port, drop.LocalAddr().(*net.UDPAddr).Port
	setConfig(t, m, 2, uint32(dropPort))

	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	const passN, dropN = 4, 3
	vals := map[uint32]uint64{}
	for _, c := range []uint32{cCgPass, cCgDrop, cSockCreate, cSockDenied} {
		vals[c] = counter(t, m, c)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GOBPF_ELF_CHILD=udp",
		"GOBPF_ELF_PASS_PORT="+strconv.Itoa(passPort), "GOBPF_ELF_PASS_N="+strconv.Itoa(passN),
		"GOBPF_ELF_DROP_PORT="+strconv.Itoa(dropPort), "GOBPF_ELF_DROP_N="+strconv.Itoa(dropN))
	cmd.SysProcAttr = &unix.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child in the cgroup: %v (exit 3: AF_INET6 socket was not denied)\n%s", err, out)
	}
	for c, want := range map[uint32]uint64{cCgPass: passN, cCgDrop: dropN, cSockCreate: 1, cSockDenied: 1} {
		if got := counter(t, m, c) - vals[c]; got != want {
			t.Errorf("counter %d grew by %d, want %d", c, got, want)
		}
	}
	buf := make([]byte, 64)
	pass.SetReadDeadline(time.Now().Add(3 * time.Second))
	for i := 0; i < passN; i++ {
		n, _, err := pass.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d to the pass port: %v", i, err)
		}
		if want := fmt.Sprintf("msg %d", i); string(buf[:n]) != want {
			t.Errorf("datagram %q, want %q", buf[:n], want)
		}
	}
	drop.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := drop.ReadFrom(buf); err == nil {
		t.Errorf("a datagram reached the drop port: %q", buf[:n])
	}
	if err := DetachCgroupProgram(skb, dir, EgressType); err != nil {
		t.Fatal(err)
	}
	if err := DetachCgroupProgram(skb, dir, EgressType); err == nil {
		t.Error("detaching twice succeeded")
	}
	// cgroup/sock stays attached: Close detaches it. Check that it is there.
	var ids [4]uint32
	if n := queryCgroup(t, int(cg.Fd()), bpfsys.BPF_CGROUP_INET_SOCK_CREATE, ids[:]); n != 1 {
		t.Errorf("%d programs on sock_create, want 1", n)
	}
}

// queryCgroup lists the programs attached to a cgroup (BPF_PROG_QUERY).
func queryCgroup(t *testing.T, fd int, typ bpfsys.AttachType, ids []uint32) int {
	t.Helper()
	attr := struct {
		TargetFd    uint32
		AttachType  uint32
		QueryFlags  uint32
		AttachFlags uint32
		ProgIDs     uint64
		ProgCnt     uint32
		_           uint32
	}{TargetFd: uint32(fd), AttachType: uint32(typ), ProgIDs: uint64(uintptr(unsafe.Pointer(&ids[0]))), ProgCnt: uint32(len(ids))}
	if _, err := bpfsys.Syscall(bpfsys.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(ids)
	return int(attr.ProgCnt)
}

// socketInNetns creates a UDP socket in network namespace ns.
func socketInNetns(t *testing.T, ns string) int {
	t.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(orig)
	nsfd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(nsfd)
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	s, serr := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and dies with this goroutine.
		t.Fatalf("returning to the original netns: %v", err)
	}
	runtime.UnlockOSThread()
	if serr != nil {
		t.Fatal(serr)
	}
	return s
}

func xdpAttached(t *testing.T, dev string) bool {
	return strings.Contains(testutil.Run(t, "ip", "link", "show", dev), "prog/xdp")
}

func testXDP(t *testing.T, m *Module) {
	const ns, dev, peer = "gobpf-elf-xdp", "gex0", "gex1"
	testutil.VethPair(t, ns, dev, peer, "10.231.7.1", "10.231.7.2")
	xp := m.XDPProgram("xdp/udp_drop")
	if err := xp.Attach(dev); err != nil {
		t.Fatal(err)
	}
	if !xdpAttached(t, dev) {
		t.Fatal("ip link shows no XDP program after Attach")
	}
	pass, err := net.ListenPacket("udp4", "10.231.7.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pass.Close()
	drop, err := net.ListenPacket("udp4", "10.231.7.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer drop.Close()
	passPort, dropPort := pass.LocalAddr().(*net.UDPAddr).Port, drop.LocalAddr().(*net.UDPAddr).Port
	setConfig(t, m, 2, uint32(dropPort))
	p0, d0 := counter(t, m, cXDPPass), counter(t, m, cXDPDrop)

	s := socketInNetns(t, ns)
	defer unix.Close(s)
	const passN, dropN = 5, 4
	for i := 0; i < passN; i++ {
		if err := unix.Sendto(s, []byte(fmt.Sprintf("pass %d", i)), 0, &unix.SockaddrInet4{Port: passPort, Addr: [4]byte{10, 231, 7, 1}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < dropN; i++ {
		if err := unix.Sendto(s, []byte(fmt.Sprintf("drop %d", i)), 0, &unix.SockaddrInet4{Port: dropPort, Addr: [4]byte{10, 231, 7, 1}}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	pass.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := map[string]bool{}
	for len(got) < passN {
		n, _, err := pass.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(got), err)
		}
		got[string(buf[:n])] = true
	}
	waitCounter(t, m, cXDPPass, p0+passN)
	waitCounter(t, m, cXDPDrop, d0+dropN)
	drop.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := drop.ReadFrom(buf); err == nil {
		t.Errorf("a datagram reached the drop port: %q", buf[:n])
	}
	if err := xp.Detach(); err != nil {
		t.Fatal(err)
	}
	if xdpAttached(t, dev) {
		t.Error("XDP program still attached after Detach")
	}
	if err := xp.Detach(); err == nil {
		t.Error("second Detach succeeded")
	}
	if err := m.AttachXDP(dev, "xdp/udp_drop"); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveXDP(dev); err != nil {
		t.Fatal(err)
	}
	if xdpAttached(t, dev) {
		t.Error("XDP program still attached after RemoveXDP")
	}
	if err := m.AttachXDP("gobpf-no-such-dev", "xdp/udp_drop"); err == nil {
		t.Error("attaching to a missing device succeeded")
	}

	// Close detaches what the module attached.
	obj := compileSnippet(t, `SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }`)
	m2 := NewModule(obj)
	if err := m2.Load(nil); err != nil {
		t.Fatal(err)
	}
	if err := m2.XDPProgram("xdp").Attach(dev); err != nil {
		t.Fatal(err)
	}
	if !xdpAttached(t, dev) {
		t.Error("no XDP program after Attach")
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	if xdpAttached(t, dev) {
		t.Error("XDP program still attached after Close")
	}
}

func TestPinning(t *testing.T) {
	cleanPins(t)
	defer cleanPins(t)
	defer testutil.CheckLeaks(t)()
	m1 := loadTestModule(t)
	paths := map[string]string{
		"pinned_global": "/sys/fs/bpf/gobpf_elf_test/globals/pinned_global",
		"pinned_custom": "/sys/fs/bpf/gobpf_elf_test_custom/pinned_custom",
		"pinned_object": "/sys/fs/bpf/gobpf/" + m1.spec.ID + "/pinned_object",
	}
	for name, p := range paths {
		mp := m1.Map(name)
		if mp.PinPath() != p || mp.Reused() {
			t.Errorf("map %s: pinned at %q (reused %v), want %q", name, mp.PinPath(), mp.Reused(), p)
		}
		key, val := uint32(1), uint64(len(name))
		if err := m1.UpdateElement(mp, unsafe.Pointer(&key), unsafe.Pointer(&val), 0); err != nil {
			t.Fatal(err)
		}
	}
	if m1.Map("counters").PinPath() != "" {
		t.Error("unpinned map has a pin path")
	}
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("pin gone after Close: %v", err)
		}
	}
	m2 := loadTestModule(t)
	for name := range paths {
		mp := m2.Map(name)
		if !mp.Reused() {
			t.Errorf("map %s not reused", name)
		}
		key, val := uint32(1), uint64(0)
		if err := m2.LookupElement(mp, unsafe.Pointer(&key), unsafe.Pointer(&val)); err != nil || val != uint64(len(name)) {
			t.Errorf("map %s [1] = %d, %v; want %d", name, val, err, len(name))
		}
	}
	if err := m2.CloseExt(unpinAll); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pin %s still there after CloseExt(Unpin): %v", p, err)
		}
	}

	// A pinned map that does not match the definition is an error.
	fd, err := bpfsys.MapCreate(&bpfsys.MapCreateAttr{MapType: bpfsys.BPF_MAP_TYPE_ARRAY, KeySize: 4, ValueSize: 4, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := PinObject(fd, paths["pinned_custom"]); err != nil {
		t.Fatal(err)
	}
	m3 := NewModule(testObject(t))
	if err := m3.Load(testParams); err == nil || !strings.Contains(err.Error(), "the object wants") {
		t.Errorf("Load over a mismatched pin: %v", err)
	}
	m3.Close()
}

func TestVerifierLog(t *testing.T) {
	obj := compileSnippet(t, `struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, int); __type(value, long); } arr SEC(".maps");
SEC("socket/bad") int bad(void *ctx) { int k = 0; long *v = bpf_map_lookup_elem(&arr, &k); return *v; }`)
	defer testutil.CheckLeaks(t)()
	m := NewModule(obj)
	err := m.Load(nil)
	if err == nil {
		m.Close()
		t.Fatal("the verifier accepted a NULL dereference")
	}
	if !strings.Contains(err.Error(), "invalid mem access") || !strings.Contains(err.Error(), "socket/bad") {
		t.Errorf("error lacks the verifier log: %v", err)
	}
	if !strings.Contains(string(m.Log()), "invalid mem access") {
		t.Errorf("Log() = %q", m.Log())
	}
	if err := m.Load(nil); err == nil {
		t.Error("second Load succeeded")
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}

func TestCloseTwice(t *testing.T) {
	cleanPins(t)
	defer cleanPins(t)
	defer testutil.CheckLeaks(t)()
	m := loadTestModule(t)
	if err := m.Load(testParams); err == nil {
		t.Error("Load twice succeeded")
	}
	mp := m.Map("counters")
	if err := m.CloseExt(unpinAll); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	var k, v uint32
	if err := m.LookupElement(mp, unsafe.Pointer(&k), unsafe.Pointer(&v)); !errors.Is(err, ErrClosed) {
		t.Errorf("lookup after Close: %v", err)
	}
	if err := m.EnableTracepoint("tracepoint/syscalls/sys_enter_getppid"); !errors.Is(err, ErrClosed) {
		t.Errorf("EnableTracepoint after Close: %v", err)
	}
	if _, err := InitPerfMap(m, "events", make(chan []byte), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("InitPerfMap after Close: %v", err)
	}
}
