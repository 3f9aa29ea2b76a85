package elf

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

func attach(t *testing.T, m *Module, prog string, f func(p *Program) (*Link, error)) *Link {
	t.Helper()
	p, err := m.Program(prog)
	if err != nil {
		t.Fatal(err)
	}
	l, err := f(p)
	if err != nil {
		t.Fatalf("attaching %s: %v", prog, err)
	}
	return l
}

func tgidCount(t *testing.T, m *Module, mapName string, pid int) uint64 {
	t.Helper()
	k, v := uint32(pid), uint64(0)
	if err := m.LookupElement(m.Map(mapName), unsafe.Pointer(&k), unsafe.Pointer(&v)); err != nil {
		return 0
	}
	return v
}

// TestModernLinksTracing: raw tracepoints, uprobes named binary:function in
// their section, a perf_event program, each through its link; a pinned link
// keeps the program attached after Close until it is unpinned.
func TestModernLinksTracing(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	const n = 17
	m := loadModern(t, uint32(os.Getpid()), 1)
	raw := attach(t, m, "rawtp_sys_enter", (*Program).Attach)
	raw2 := attach(t, m, "raw_tracepoint/sys_enter", (*Program).Attach)
	for i := 0; i < n; i++ {
		unix.Getuid()
		unix.Getgid()
	}
	c := counts(t, m)
	if c[mRawTP] != n || c[mRawTracepoint] != n {
		t.Errorf("raw_tp counted %d getuid, raw_tracepoint %d getgid; want %d", c[mRawTP], c[mRawTracepoint], n)
	}
	if !raw.IsBPFLink() {
		t.Error("raw tracepoint attachment is not a bpf_link")
	}
	// Pin raw2, close it: still counting; reload the pin, unpin, close: stops.
	pin := filepath.Join(BPFFSPath, fmt.Sprintf("gobpf_elfmodern_%d", os.Getpid()), "rawtp")
	if err := raw2.Pin(pin); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(filepath.Dir(pin))
	raw.Close()
	raw2.Close()
	unix.Getgid()
	unix.Getuid()
	if c2 := counts(t, m); c2[mRawTracepoint] != n+1 || c2[mRawTP] != n {
		t.Errorf("after Close: pinned link counted %d (want %d), unpinned %d (want %d)", c2[mRawTracepoint], n+1, c2[mRawTP], n)
	}
	pl, err := LoadPinnedLink(pin)
	if err != nil {
		t.Fatal(err)
	}
	info, err := pl.Info()
	if err != nil || info.Type != 1 /* BPF_LINK_TYPE_RAW_TRACEPOINT */ {
		t.Errorf("pinned link info %+v, %v; want a raw tracepoint link", info, err)
	}
	if err := pl.Unpin(); err != nil {
		t.Fatal(err)
	}
	pl.Close()
	unix.Getgid()
	if c2 := counts(t, m); c2[mRawTracepoint] != n+1 {
		t.Errorf("after Unpin and Close: %d, want %d", c2[mRawTracepoint], n+1)
	}

	// uprobe/libc.so.6:getpid and its uretprobe, from the section names.
	child := testutil.BuildC(t, "#include <unistd.h>\n#include <stdlib.h>\nint main(int c, char **v) { int n = atoi(v[1]); for (int i = 0; i < n; i++) getpid(); return 0; }\n")
	up := attach(t, m, "uprobe_getpid", (*Program).Attach)
	uret := attach(t, m, "uretprobe/libc.so.6:getpid", (*Program).Attach)
	cmd := exec.Command(child, strconv.Itoa(n))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	pid := cmd.Process.Pid
	if u, r := tgidCount(t, m, "uprobe_hits", pid), tgidCount(t, m, "uretprobe_hits", pid); u != n || r != n {
		t.Errorf("uprobe counted %d, uretprobe %d calls of getpid in the child; want %d", u, r, n)
	}
	up.Close()
	uret.Close()
	cmd = exec.Command(child, strconv.Itoa(n))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if u := tgidCount(t, m, "uprobe_hits", cmd.Process.Pid); u != 0 {
		t.Errorf("uprobe counted %d after its link closed", u)
	}
	// Explicit binary and symbol, for one process.
	p, _ := m.Program("uprobe_getpid")
	if _, err := p.AttachUprobe("libc.so.6", "no_such_function_gobpf", -1); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown symbol: %v, want ErrNotFound", err)
	}

	// perf_event: a software clock sampling this process.
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_TASK_CLOCK, Sample: 100000}
	attr.Size = uint32(unsafe.Sizeof(attr))
	efd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	pe := attach(t, m, "perf_event", func(p *Program) (*Link, error) { return p.AttachPerfEvent(efd) })
	unix.Close(efd)
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end) && counts(t, m)[mPerf] == 0; {
	}
	if counts(t, m)[mPerf] == 0 {
		t.Error("perf_event program never ran")
	}
	pe.Close()

	// Kernel-only families refuse user attach points.
	if _, err := p.AttachInterface("lo"); err == nil {
		t.Error("uprobe attached to an interface")
	}
}

// TestModernLinksKprobe attaches kprobe/, kretprobe/, ksyscall/ and
// kretsyscall/ sections through perf links (the VM lane runs it).
func TestModernLinksKprobe(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	m := loadModern(t, uint32(os.Getpid()), 1)
	p, err := m.Program("ksyscall_getpid")
	if err != nil {
		t.Fatal(err)
	}
	if !testutil.HaveKprobes() {
		if _, err := p.Attach(); !errors.Is(err, ErrNotSupported) {
			t.Errorf("ksyscall without kprobes: %v, want ErrNotSupported", err)
		}
	}
	testutil.RequireKprobes(t)
	for _, name := range []string{"kprobe_nanosleep", "kretprobe_nanosleep", "ksyscall_getpid", "kretsyscall_getpid"} {
		l := attach(t, m, name, (*Program).Attach)
		if !l.IsBPFLink() {
			t.Logf("%s: legacy perf attachment (no perf link)", name)
		}
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	}
}

// TestModernLinksNet: xdp, tcx/ingress, tcx/egress and tc through links on
// a veth pair, and a socket filter, each counting exactly the datagrams sent.
func TestModernLinksNet(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	const n = 9
	pid := os.Getpid()
	ns, dev, peer := fmt.Sprintf("gobpf-em-%d", pid), fmt.Sprintf("gem%d", pid%100000), fmt.Sprintf("gemp%d", pid%100000)
	a, b := 200+pid%50, (pid/50)%250
	devAddr, peerAddr := fmt.Sprintf("10.%d.%d.1", a, b), fmt.Sprintf("10.%d.%d.2", a, b)
	port := uint16(40000 + pid%20000)
	testutil.VethPair(t, ns, dev, peer, devAddr, peerAddr)
	m := loadModern(t, uint32(pid), port)
	onDev := func(p *Program) (*Link, error) { return p.AttachInterface(dev) }
	links := []*Link{attach(t, m, "xdp_count", onDev)}
	want := map[int]uint64{mXDP: n}
	for prog, slot := range map[string]int{"tcx_in": mTCXIn, "tcx_out": mTCXOut, "tc_count": mTC} {
		p, _ := m.Program(prog)
		l, err := p.AttachInterface(dev)
		if errors.Is(err, ErrNotSupported) {
			t.Logf("%s: %v (kernel without TCX)", prog, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		links = append(links, l)
		want[slot] = n
	}
	if !links[0].IsBPFLink() {
		t.Errorf("%s is not a bpf_link", links[0])
	}
	for _, l := range links[1:] {
		if !l.IsBPFLink() {
			t.Logf("%s: legacy cls_bpf attachment (kernel without TCX)", l)
		}
	}
	// n datagrams from the namespace to devAddr (ingress on dev), n from
	// here to peerAddr (egress on dev).
	s := socketInNetns(t, ns)
	defer unix.Close(s)
	h, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(h)
	ip4 := func(s string) [4]byte { var a [4]byte; copy(a[:], net.ParseIP(s).To4()); return a }
	for i := 0; i < n; i++ {
		if err := unix.Sendto(s, []byte("in"), 0, &unix.SockaddrInet4{Port: int(port), Addr: ip4(devAddr)}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Sendto(h, []byte("out"), 0, &unix.SockaddrInet4{Port: int(port), Addr: ip4(peerAddr)}); err != nil {
			t.Fatal(err)
		}
	}
	var c [mMax]uint64
	for i := 0; i < 250; i++ { // the first datagrams wait for ARP
		c = counts(t, m)
		done := true
		for slot, w := range want {
			done = done && c[slot] == w
		}
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for slot, w := range want {
		if c[slot] != w {
			t.Errorf("counter %d = %d, want %d", slot, c[slot], w)
		}
	}
	for _, l := range links {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	}
	unix.Sendto(s, []byte("in"), 0, &unix.SockaddrInet4{Port: int(port), Addr: ip4(devAddr)})
	time.Sleep(50 * time.Millisecond)
	if c2 := counts(t, m); c2[mXDP] != n || c2[mTCXIn] != want[mTCXIn] {
		t.Errorf("after Close: xdp %d, tcx %d; want %d, %d", c2[mXDP], c2[mTCXIn], n, want[mTCXIn])
	}

	// Socket filter on a loopback UDP socket.
	rs, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rs)
	if err := unix.Bind(rs, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(rs)
	sl := attach(t, m, "socket", func(p *Program) (*Link, error) { return p.AttachSocket(rs) })
	buf := make([]byte, 16)
	for i := 0; i < n; i++ {
		unix.Sendto(h, []byte("x"), 0, sa)
		if _, _, err := unix.Recvfrom(rs, buf, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := sl.Close(); err != nil {
		t.Fatal(err)
	}
	unix.Sendto(h, []byte("x"), 0, sa)
	unix.Recvfrom(rs, buf, 0)
	if c := counts(t, m); c[mSocket] != n {
		t.Errorf("socket filter counted %d, want %d", c[mSocket], n)
	}
}

const cgroupChildSrc = `#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
// argv: N, TCP port to connect to. Every step is counted by a program
// (recvmsg hooks run only when the caller asks for the source address).
int main(int c, char **v) {
	int n = atoi(v[1]), tport = atoi(v[2]);
	char buf[64];
	for (int i = 0; i < n; i++) {
		int s = socket(AF_INET, SOCK_DGRAM, 0), prio = 1; socklen_t l = sizeof(prio);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (s < 0 || setsockopt(s, SOL_SOCKET, SO_PRIORITY, &prio, l) || getsockopt(s, SOL_SOCKET, SO_PRIORITY, &prio, &l)) return 10;
		if (bind(s, (void *)&a, sizeof(a))) return 11;
		l = sizeof(a); getsockname(s, (void *)&a, &l);
		if (sendto(s, "x", 1, 0, (void *)&a, sizeof(a)) != 1) return 12;
		l = sizeof(a); if (recvfrom(s, buf, sizeof(buf), 0, (void *)&a, &l) != 1) return 13;
		if (connect(s, (void *)&a, sizeof(a))) return 14;
		close(s);
		int s6 = socket(AF_INET6, SOCK_DGRAM, 0);
		struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
		if (s6 < 0 || bind(s6, (void *)&a6, sizeof(a6))) return 15;
		l = sizeof(a6); getsockname(s6, (void *)&a6, &l);
		if (sendto(s6, "x", 1, 0, (void *)&a6, sizeof(a6)) != 1) return 16;
		l = sizeof(a6); if (recvfrom(s6, buf, sizeof(buf), 0, (void *)&a6, &l) != 1) return 17;
		if (connect(s6, (void *)&a6, sizeof(a6))) return 18;
		close(s6);
		int f = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY);
		if (f < 0 || pread(f, buf, sizeof(buf), 0) <= 0) return 19;
		close(f);
		f = open("/dev/null", O_RDONLY);
		if (f < 0) return 20;
		close(f);
		int t = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in ta = {.sin_family = AF_INET, .sin_port = htons(tport), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (t < 0 || connect(t, (void *)&ta, sizeof(ta))) return 21;
		close(t);
	}
	return 0;
}
`

// TestModernLinksCgroup attaches every cgroup family of modern.c to a new
// cgroup through cgroup links and runs a child there that does each thing
// they count n times.
func TestModernLinksCgroup(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	const n = 5
	child := testutil.BuildC(t, cgroupChildSrc)
	dir := filepath.Join(cgroup2Root(t), fmt.Sprintf("gobpf-elfmodern-%d", os.Getpid()))
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
	m := loadModern(t, uint32(os.Getpid()), 1)
	progs := map[string]int{
		"skb_in": mSkbIn, "skb_out": mSkbOut, "sock_create": mSockCreate, "connect4": mConnect4,
		"connect6": mConnect6, "bind4": mBind4, "bind6": mBind6, "sendmsg4": mSendmsg4,
		"sendmsg6": mSendmsg6, "recvmsg4": mRecvmsg4, "recvmsg6": mRecvmsg6,
		"getsockopt_prog": mGetsockopt, "setsockopt_prog": mSetsockopt, "sysctl_prog": mSysctl,
		"dev_prog": mDev, "sockops_prog": mSockops,
	}
	var links []*Link
	for name := range progs {
		l := attach(t, m, name, func(p *Program) (*Link, error) { return p.AttachCgroup(dir) })
		if !l.IsBPFLink() {
			t.Errorf("%s: not a cgroup bpf_link", name)
		}
		links = append(links, l)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	run := func() {
		cg, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer cg.Close()
		cmd := exec.Command(child, strconv.Itoa(n), strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		cmd.SysProcAttr = &unix.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child in the cgroup: %v\n%s", err, out)
		}
	}
	run()
	want := map[int]uint64{
		mSkbIn: 2 * n, mSkbOut: 2 * n, mSockCreate: 3 * n, mConnect4: 2 * n, mConnect6: n,
		mBind4: n, mBind6: n, mSendmsg4: n, mSendmsg6: n, mRecvmsg4: n, mRecvmsg6: n,
		mGetsockopt: n, mSetsockopt: n, mSysctl: n, mDev: n, mSockops: n,
	}
	c := counts(t, m)
	for name, slot := range progs {
		if c[slot] != want[slot] {
			t.Errorf("%s counted %d, want %d", name, c[slot], want[slot])
		}
	}
	for _, l := range links {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	}
	run()
	if c2 := counts(t, m); c2 != c {
		t.Errorf("counters moved after every link closed:\n%v\n%v", c, c2)
	}
}

// TestModernLinksSockmap: sk_msg and sk_skb/stream_verdict programs attached
// to sockmaps through links see every message of a TCP connection.
func TestModernLinksSockmap(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	const n = 6
	m := loadModern(t, uint32(os.Getpid()), 1)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fdOf := func(c net.Conn) *os.File {
		f, err := c.(*net.TCPConn).File()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	cf, sf := fdOf(cli), fdOf(srv)
	defer cf.Close()
	defer sf.Close()
	lm := attach(t, m, "sk_msg", func(p *Program) (*Link, error) { return p.AttachMap(m.Map("msg_map")) })
	ls := attach(t, m, "sk_skb/stream_verdict", func(p *Program) (*Link, error) { return p.AttachMap(m.Map("skb_map")) })
	k, v := uint32(0), uint32(cf.Fd())
	if err := m.UpdateElement(m.Map("msg_map"), unsafe.Pointer(&k), unsafe.Pointer(&v), 0); err != nil {
		t.Fatal(err)
	}
	v = uint32(sf.Fd())
	if err := m.UpdateElement(m.Map("skb_map"), unsafe.Pointer(&k), unsafe.Pointer(&v), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	for i := 0; i < n; i++ {
		if _, err := cli.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io_ReadFull(srv, buf[:4]); err != nil {
			t.Fatal(err)
		}
	}
	if c := counts(t, m); c[mSkMsg] != n || c[mSkSkb] != n {
		t.Errorf("sk_msg counted %d, sk_skb %d; want %d", c[mSkMsg], c[mSkSkb], n)
	}
	if err := errors.Join(lm.Close(), ls.Close()); err != nil {
		t.Fatal(err)
	}
}

func io_ReadFull(c net.Conn, b []byte) (int, error) {
	got := 0
	for got < len(b) {
		k, err := c.Read(b[got:])
		got += k
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// TestModernTCLegacy: the fallback for kernels without TCX, a cls_bpf
// filter under clsact, counts ingress and egress and is removed by detach.
func TestModernTCLegacy(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	const n = 5
	pid := os.Getpid()
	ns, dev, peer := fmt.Sprintf("gobpf-emt-%d", pid), fmt.Sprintf("gemt%d", pid%100000), fmt.Sprintf("gemtp%d", pid%100000)
	a, b := 150+pid%50, (pid/50)%250
	devAddr, peerAddr := fmt.Sprintf("10.%d.%d.1", a, b), fmt.Sprintf("10.%d.%d.2", a, b)
	port := uint16(40000 + pid%20000)
	testutil.VethPair(t, ns, dev, peer, devAddr, peerAddr)
	m := loadModern(t, uint32(pid), port)
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := m.Program("tcx_in")
	out, _ := m.Program("tcx_out")
	detachIn, err := attachTCLegacy(ifc.Index, in.Fd(), "tcx_in", false)
	if err != nil {
		t.Fatal(err)
	}
	detachOut, err := attachTCLegacy(ifc.Index, out.Fd(), "tcx_out", true)
	if err != nil {
		t.Fatal(err)
	}
	if f := testutil.Run(t, "tc", "filter", "show", "dev", dev, "ingress"); !strings.Contains(f, "tcx_in") || !strings.Contains(f, "direct-action") {
		t.Errorf("tc filter show: %s", f)
	}
	s := socketInNetns(t, ns)
	defer unix.Close(s)
	h, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(h)
	ip4 := func(s string) [4]byte { var a [4]byte; copy(a[:], net.ParseIP(s).To4()); return a }
	for i := 0; i < n; i++ {
		unix.Sendto(s, []byte("in"), 0, &unix.SockaddrInet4{Port: int(port), Addr: ip4(devAddr)})
		unix.Sendto(h, []byte("out"), 0, &unix.SockaddrInet4{Port: int(port), Addr: ip4(peerAddr)})
	}
	var c [mMax]uint64
	for i := 0; i < 250; i++ {
		if c = counts(t, m); c[mTCXIn] == n && c[mTCXOut] == n {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c[mTCXIn] != n || c[mTCXOut] != n {
		t.Errorf("cls_bpf counted %d in, %d out; want %d", c[mTCXIn], c[mTCXOut], n)
	}
	if err := errors.Join(detachIn(), detachOut()); err != nil {
		t.Fatal(err)
	}
	if f := testutil.Run(t, "tc", "filter", "show", "dev", dev, "ingress"); strings.Contains(f, "tcx_in") {
		t.Errorf("filter still there after detach: %s", f)
	}
}
