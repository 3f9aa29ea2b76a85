package bcc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/iovisor/gobpf/internal/testutil"
)

// cgroupHelperSource is a program the cgroup tests run inside the cgroup
// they create: each command makes an exact number of the system calls a
// hook sees.
const cgroupHelperSource = `
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(1); }

int main(int argc, char **argv) {
	if (argc < 3) { fprintf(stderr, "usage\n"); return 2; }
	const char *cmd = argv[1];
	int n = atoi(argv[2]);
	if (!strcmp(cmd, "connect4") || !strcmp(cmd, "connect6")) {
		/* connect4|6 PORT: connect to loopback PORT, send "hi <PORT>" */
		int v6 = cmd[7] == '6';
		int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		if (s < 0) die("socket");
		int r;
		if (v6) {
			struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(n), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
			r = connect(s, (struct sockaddr *)&a, sizeof a);
		} else {
			struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(n), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
			r = connect(s, (struct sockaddr *)&a, sizeof a);
		}
		if (r < 0) die("connect");
		char msg[32];
		int l = snprintf(msg, sizeof msg, "hi %d", n);
		if (write(s, msg, l) != l) die("write");
		close(s);
	} else if (!strcmp(cmd, "getsockopt") || !strcmp(cmd, "setsockopt")) {
		/* getsockopt|setsockopt N: N calls on SOL_SOCKET SO_PRIORITY */
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0) die("socket");
		for (int i = 0; i < n; i++) {
			int v = 3;
			socklen_t l = sizeof v;
			if (cmd[0] == 'g' ? getsockopt(s, SOL_SOCKET, SO_PRIORITY, &v, &l) : setsockopt(s, SOL_SOCKET, SO_PRIORITY, &v, l))
				die(cmd);
		}
		close(s);
	} else if (!strcmp(cmd, "udpsockets")) {
		/* udpsockets N: create N UDP sockets */
		for (int i = 0; i < n; i++) {
			int s = socket(AF_INET, SOCK_DGRAM, 0);
			if (s < 0) die("socket");
			close(s);
		}
	} else if (!strcmp(cmd, "sysctl")) {
		/* sysctl N: read net.core.somaxconn N times, one read each */
		for (int i = 0; i < n; i++) {
			int f = open("/proc/sys/net/core/somaxconn", O_RDONLY);
			char buf[64];
			if (f < 0 || read(f, buf, sizeof buf) <= 0) die("sysctl");
			close(f);
		}
	} else if (!strcmp(cmd, "devnull")) {
		/* devnull N: open /dev/null N times */
		for (int i = 0; i < n; i++) {
			int f = open("/dev/null", O_RDONLY);
			if (f < 0) die("open /dev/null");
			close(f);
		}
	} else if (!strcmp(cmd, "bind4")) {
		/* bind4 PORT: bind a UDP socket to 127.0.0.1:PORT, print the port it got */
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(n), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t l = sizeof a;
		if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || getsockname(s, (struct sockaddr *)&a, &l)) die("bind");
		printf("%d\n", ntohs(a.sin_port));
		close(s);
	} else if (!strcmp(cmd, "sendto4")) {
		/* sendto4 PORT COUNT: send COUNT datagrams to 127.0.0.1:PORT */
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(n), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (s < 0) die("socket");
		for (int i = 0; i < atoi(argv[3]); i++) {
			char msg[32];
			int l = snprintf(msg, sizeof msg, "dgram %d", i);
			if (sendto(s, msg, l, 0, (struct sockaddr *)&a, sizeof a) != l) die("sendto");
		}
		close(s);
	} else if (!strcmp(cmd, "recvfrom4")) {
		/* recvfrom4 PORT COUNT: bind 127.0.0.1:PORT, say "ready", receive COUNT
		   datagrams and print each one's source port */
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(n), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a)) die("bind");
		printf("ready\n");
		fflush(stdout);
		for (int i = 0; i < atoi(argv[3]); i++) {
			char buf[64];
			socklen_t l = sizeof a;
			if (recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&a, &l) < 0) die("recvfrom");
			printf("%d\n", ntohs(a.sin_port));
		}
		close(s);
	} else {
		fprintf(stderr, "unknown command %s\n", cmd);
		return 2;
	}
	return 0;
}
`

// cgroupSource holds a program for every cgroup hook the tests attach;
// counts[slot] counts what each saw, cfg holds ports set by the test.
const cgroupSource = `
#include <uapi/linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/socket.h>
#include <asm-generic/socket.h>

BPF_ARRAY(counts, u64, 16);
BPF_ARRAY(cfg, u32, 16);

static inline void add(int slot) {
	u64 *p = counts.lookup(&slot);
	if (p)
		__sync_fetch_and_add(p, 1);
}

static inline u32 conf(int slot) {
	u32 *p = cfg.lookup(&slot);
	return p ? *p : 0;
}

int connect4(struct bpf_sock_addr *ctx) {
	if (ctx->user_ip4 == bpf_htonl(0x7f000001) && ctx->user_port == bpf_htons(conf(0))) {
		ctx->user_port = bpf_htons(conf(1));
		add(0);
	}
	return 1;
}

int connect6(struct bpf_sock_addr *ctx) {
	if (ctx->user_ip6[0] == 0 && ctx->user_ip6[1] == 0 && ctx->user_ip6[2] == 0 &&
	    ctx->user_ip6[3] == bpf_htonl(1) && ctx->user_port == bpf_htons(conf(2))) {
		ctx->user_port = bpf_htons(conf(3));
		add(1);
	}
	return 1;
}

int bind4(struct bpf_sock_addr *ctx) {
	if (ctx->user_port == bpf_htons(conf(4))) {
		ctx->user_port = bpf_htons(conf(5));
		add(2);
	}
	return 1;
}

int sendmsg4(struct bpf_sock_addr *ctx) {
	if (ctx->user_ip4 == bpf_htonl(0x7f000001) && ctx->user_port == bpf_htons(conf(6))) {
		ctx->user_port = bpf_htons(conf(7));
		add(3);
	}
	return 1;
}

int recvmsg4(struct bpf_sock_addr *ctx) {
	if (ctx->user_port == bpf_htons(conf(8))) {
		ctx->user_port = bpf_htons(conf(9));
		add(4);
	}
	return 1;
}

int getsockopt_prog(struct bpf_sockopt *ctx) {
	if (ctx->level == SOL_SOCKET && ctx->optname == SO_PRIORITY)
		add(5);
	return 1;
}

int setsockopt_prog(struct bpf_sockopt *ctx) {
	if (ctx->level == SOL_SOCKET && ctx->optname == SO_PRIORITY)
		add(6);
	return 1;
}

int sock_create_prog(struct bpf_sock *sk) {
	if (sk->family == AF_INET && sk->type == SOCK_DGRAM && sk->protocol == IPPROTO_UDP)
		add(7);
	return 1;
}

int sysctl_prog(struct bpf_sysctl *ctx) {
	char name[16] = {};
	if (ctx->write || bpf_sysctl_get_name(ctx, name, sizeof(name), BPF_F_SYSCTL_BASE_NAME) != 9)
		return 1;
	if (name[0] == 's' && name[1] == 'o' && name[2] == 'm' && name[3] == 'a' && name[4] == 'x' &&
	    name[5] == 'c' && name[6] == 'o' && name[7] == 'n' && name[8] == 'n')
		add(8);
	return 1;
}

int device_prog(struct bpf_cgroup_dev_ctx *ctx) {
	if ((ctx->access_type & 0xffff) == BPF_DEVCG_DEV_CHAR && ctx->major == 1 && ctx->minor == 3)
		add(9);
	return 1;
}

int sockops_prog(struct bpf_sock_ops *skops) {
	if (skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB && skops->remote_port == bpf_htonl(conf(1)))
		add(10);
	return 1;
}

static inline int skb_udp_port(struct __sk_buff *skb, int dst) {
	struct iphdr ip;
	if (skb->protocol != bpf_htons(0x0800) || bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != IPPROTO_UDP)
		return -1;
	struct udphdr udp;
	if (bpf_skb_load_bytes(skb, ip.ihl * 4, &udp, sizeof(udp)))
		return -1;
	return bpf_ntohs(dst ? udp.dest : udp.source);
}

int skb_egress(struct __sk_buff *skb) {
	if (skb_udp_port(skb, 1) == conf(10))
		add(11);
	return 1;
}

int skb_ingress(struct __sk_buff *skb) {
	if (skb_udp_port(skb, 1) == conf(11)) {
		add(12);
		if (conf(12))
			return 0; /* drop */
	}
	return 1;
}
`

// Slots of counts and cfg in cgroupSource.
const (
	cgConnect4 = iota
	cgConnect6
	cgBind4
	cgSendmsg4
	cgRecvmsg4
	cgGetsockopt
	cgSetsockopt
	cgSockCreate
	cgSysctl
	cgDevice
	cgSockops
	cgSkbEgress
	cgSkbIngress
)

var cgroupSeq atomic.Int32

// cgroup2Mount returns where the cgroup v2 hierarchy is mounted.
func cgroup2Mount(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f := strings.Fields(pre)
		if ok && strings.HasPrefix(post, "cgroup2 ") && len(f) >= 5 {
			return f[4]
		}
	}
	t.Skip("no cgroup v2 hierarchy mounted")
	return ""
}

// newCgroup creates an empty cgroup, removed at cleanup.
func newCgroup(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(cgroup2Mount(t), fmt.Sprintf("gobpf-bcc-%d-%d", os.Getpid(), cgroupSeq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50; i++ { // a child's exit is not instant
			if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cannot remove cgroup %s", dir)
	})
	return dir
}

// cgroupCmd returns a command that starts inside cgroup cg.
func cgroupCmd(t testing.TB, cg string, name string, args ...string) (*exec.Cmd, func()) {
	t.Helper()
	f, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	return cmd, func() { f.Close() }
}

type cgroupTest struct {
	t      *testing.T
	m      *Module
	cg     string
	helper string
}

// run runs the helper in the cgroup and returns its output.
func (c *cgroupTest) run(args ...string) string {
	c.t.Helper()
	cmd, done := cgroupCmd(c.t, c.cg, c.helper, args...)
	defer done()
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		c.t.Fatalf("helper %v: %v", args, err)
	}
	return string(out)
}

func (c *cgroupTest) count(slot uint32) uint64 { return lookupU64(c.t, c.m, "counts", slot) }

func (c *cgroupTest) setConf(slot, v uint32) {
	c.t.Helper()
	var k, b [4]byte
	binary.NativeEndian.PutUint32(k[:], slot)
	binary.NativeEndian.PutUint32(b[:], v)
	if err := NewTable(c.m.TableId("cfg"), c.m).Set(k[:], b[:]); err != nil {
		c.t.Fatal(err)
	}
}

// attach loads fn for typ and attaches it to the cgroup.
func (c *cgroupTest) attach(fn string, progType int, typ AttachType) int {
	c.t.Helper()
	fd, err := c.m.LoadWithOptions(fn, progType, ExpectAttachType(typ))
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.m.AttachCgroup(c.cg, fd, typ, 0); err != nil {
		c.t.Fatal(err)
	}
	return fd
}

// expect runs the helper with args and checks that counts[slot] grew by want.
func (c *cgroupTest) expect(slot uint32, want uint64, args ...string) string {
	c.t.Helper()
	before := c.count(slot)
	out := c.run(args...)
	if got := c.count(slot) - before; got != want {
		c.t.Errorf("helper %v: counted %d, want %d", args, got, want)
	}
	return out
}

// freePort returns a loopback port nothing listens on (now).
func freePort(t testing.TB, network string) int {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "udp6" {
		addr = "[::1]:0"
	}
	l, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.LocalAddr().(*net.UDPAddr).Port
}

// acceptOne accepts one connection on l and returns what it sent.
func acceptOne(t testing.TB, l net.Listener) <-chan string {
	ch := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			ch <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		ch <- string(b)
	}()
	return ch
}

func TestCgroupHooks(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	cg := newCgroup(t)
	helper := testutil.BuildC(t, cgroupHelperSource)
	m := mustNewModule(t, cgroupSource)
	defer m.Close()
	c := &cgroupTest{t: t, m: m, cg: cg, helper: helper}
	t.Run("errors", func(t *testing.T) { testCgroupErrors(t, m, cg) })

	t.Run("connect4", func(t *testing.T) {
		c.t = t
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		to, from := l.Addr().(*net.TCPAddr).Port, freePort(t, "udp4")
		c.setConf(0, uint32(from))
		c.setConf(1, uint32(to))
		fd := c.attach("connect4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT)
		sfd := c.attach("sockops_prog", BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS)
		got := acceptOne(t, l)
		ops := c.count(cgSockops)
		c.expect(cgConnect4, 1, "connect4", strconv.Itoa(from))
		if s := <-got; s != fmt.Sprintf("hi %d", from) {
			t.Errorf("listener on port %d got %q, want the connection to port %d", to, s, from)
		}
		if n := c.count(cgSockops) - ops; n != 1 {
			t.Errorf("sock_ops program saw %d active connects, want 1", n)
		}
		if err := m.DetachCgroup(cg, fd, BPF_CGROUP_INET4_CONNECT); err != nil {
			t.Fatal(err)
		}
		if err := m.DetachCgroup(cg, sfd, BPF_CGROUP_SOCK_OPS); err != nil {
			t.Fatal(err)
		}
		// Detached: port A is refused again.
		cmd, done := cgroupCmd(t, cg, helper, "connect4", strconv.Itoa(from))
		defer done()
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "refused") {
			t.Errorf("connect to port %d after detach: %v %s, want connection refused", from, err, out)
		}
	})
	t.Run("connect6", func(t *testing.T) {
		c.t = t
		l, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skip("no IPv6 loopback:", err)
		}
		defer l.Close()
		to, from := l.Addr().(*net.TCPAddr).Port, freePort(t, "udp6")
		c.setConf(2, uint32(from))
		c.setConf(3, uint32(to))
		c.attach("connect6", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_CONNECT)
		got := acceptOne(t, l)
		c.expect(cgConnect6, 1, "connect6", strconv.Itoa(from))
		if s := <-got; s != fmt.Sprintf("hi %d", from) {
			t.Errorf("listener on [::1]:%d got %q", to, s)
		}
	})
	t.Run("bind4", func(t *testing.T) {
		c.t = t
		from, to := freePort(t, "udp4"), freePort(t, "udp4")
		c.setConf(4, uint32(from))
		c.setConf(5, uint32(to))
		c.attach("bind4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_BIND)
		if out := strings.TrimSpace(c.expect(cgBind4, 1, "bind4", strconv.Itoa(from))); out != strconv.Itoa(to) {
			t.Errorf("bind to port %d got port %s, want %d", from, out, to)
		}
	})
	t.Run("sendmsg4", func(t *testing.T) {
		c.t = t
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		from := freePort(t, "udp4")
		c.setConf(6, uint32(from))
		c.setConf(7, uint32(conn.LocalAddr().(*net.UDPAddr).Port))
		c.attach("sendmsg4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_SENDMSG)
		c.expect(cgSendmsg4, 4, "sendto4", strconv.Itoa(from), "4")
		if got := udpRecv(conn, 4, 3*time.Second); len(got) != 4 || got[3] != "dgram 3" {
			t.Errorf("datagrams sent to port %d arrived as %q, want 4", from, got)
		}
	})
	t.Run("recvmsg4+skb", func(t *testing.T) {
		c.t = t
		port := freePort(t, "udp4")
		src, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		srcPort := src.LocalAddr().(*net.UDPAddr).Port
		const fake = 4242
		c.setConf(8, uint32(srcPort))
		c.setConf(9, fake)
		c.setConf(11, uint32(port))
		c.setConf(12, 1) // the ingress program drops the first datagrams
		c.attach("recvmsg4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_RECVMSG)
		ifd := c.attach("skb_ingress", BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS)
		cmd, done := cgroupCmd(t, cg, helper, "recvfrom4", strconv.Itoa(port), "2")
		defer done()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(stdout)
		if l, _ := r.ReadString('\n'); l != "ready\n" {
			t.Fatalf("helper said %q", l)
		}
		dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		r0, i0 := c.count(cgRecvmsg4), c.count(cgSkbIngress)
		for i := 0; i < 3; i++ { // dropped by the skb ingress program
			src.WriteTo([]byte("dropped"), dst)
		}
		time.Sleep(100 * time.Millisecond)
		if got := c.count(cgSkbIngress) - i0; got != 3 {
			t.Errorf("skb ingress program saw %d datagrams, want 3", got)
		}
		c.setConf(12, 0)
		if err := m.DetachCgroup(cg, ifd, BPF_CGROUP_INET_INGRESS); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			src.WriteTo([]byte("kept"), dst)
		}
		rest, _ := io.ReadAll(r)
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%d\n%d\n", fake, fake); string(rest) != want {
			t.Errorf("helper saw source ports %q, want %q", rest, want)
		}
		if got := c.count(cgRecvmsg4) - r0; got != 2 {
			t.Errorf("recvmsg4 program rewrote %d source addresses, want 2", got)
		}
		if got := c.count(cgSkbIngress) - i0; got != 3 {
			t.Errorf("skb ingress program saw %d datagrams after detach, want 3 in all", got)
		}
	})
	t.Run("skb_egress", func(t *testing.T) {
		c.t = t
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		port := conn.LocalAddr().(*net.UDPAddr).Port
		c.setConf(10, uint32(port))
		c.attach("skb_egress", BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_EGRESS)
		c.expect(cgSkbEgress, 5, "sendto4", strconv.Itoa(port), "5")
		if got := udpRecv(conn, 5, 3*time.Second); len(got) != 5 {
			t.Errorf("%d datagrams arrived, want 5", len(got))
		}
	})
	t.Run("sockopt", func(t *testing.T) {
		c.t = t
		g := c.attach("getsockopt_prog", BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_GETSOCKOPT)
		c.attach("setsockopt_prog", BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_SETSOCKOPT)
		c.expect(cgGetsockopt, 6, "getsockopt", "6")
		c.expect(cgSetsockopt, 4, "setsockopt", "4")
		if err := m.DetachCgroup(cg, g, BPF_CGROUP_GETSOCKOPT); err != nil {
			t.Fatal(err)
		}
		c.expect(cgGetsockopt, 0, "getsockopt", "3")
	})
	t.Run("sock_create", func(t *testing.T) {
		c.t = t
		c.attach("sock_create_prog", BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE)
		c.expect(cgSockCreate, 5, "udpsockets", "5")
	})
	t.Run("sysctl", func(t *testing.T) {
		c.t = t
		c.attach("sysctl_prog", BPF_PROG_TYPE_CGROUP_SYSCTL, BPF_CGROUP_SYSCTL)
		c.expect(cgSysctl, 3, "sysctl", "3")
	})
	t.Run("device", func(t *testing.T) {
		c.t = t
		c.attach("device_prog", BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE)
		c.expect(cgDevice, 4, "devnull", "4")
	})
	// The test process is outside the cgroup: nothing it does is seen.
	before := c.count(cgGetsockopt) + c.count(cgSysctl) + c.count(cgDevice)
	os.ReadFile("/proc/sys/net/core/somaxconn")
	os.ReadFile("/dev/null")
	if after := c.count(cgGetsockopt) + c.count(cgSysctl) + c.count(cgDevice); after != before {
		t.Errorf("programs counted %d events of a process outside the cgroup", after-before)
	}
	// Close detaches the rest.
	if out := testutil.Run(t, "bpftool", "cgroup", "show", cg); !strings.Contains(out, "device_prog") || !strings.Contains(out, "sysctl_prog") {
		t.Errorf("bpftool cgroup show %s: programs missing before Close:\n%s", cg, out)
	}
	m.Close()
	if out := testutil.Run(t, "bpftool", "cgroup", "show", cg); strings.TrimSpace(out) != "" {
		t.Errorf("bpftool cgroup show %s: programs left after Close:\n%s", cg, out)
	}
	if err := m.AttachCgroup(cg, 3, BPF_CGROUP_DEVICE, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("AttachCgroup after Close: %v, want ErrClosed", err)
	}
}

func testCgroupErrors(t *testing.T, m *Module, cg string) {
	if _, err := m.LoadWithOptions("connect4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "expected attach type") {
		t.Errorf("sock_addr program without an attach type: %v", err)
	}
	fd, err := m.LoadCgroupDevice("device_prog")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AttachCgroup(cg+"-nosuch", fd, BPF_CGROUP_DEVICE, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing cgroup: %v, want ErrNotFound", err)
	}
	if err := m.AttachCgroup("/proc", fd, BPF_CGROUP_DEVICE, 0); err == nil || !strings.Contains(err.Error(), "cgroup v2") {
		t.Errorf("not a cgroup: %v", err)
	}
	if err := m.AttachCgroup(cg, fd, BPF_CGROUP_SYSCTL, 0); err == nil {
		t.Error("device program attached as sysctl: no error")
	}
	if err := m.DetachCgroup(cg, fd, BPF_CGROUP_DEVICE); !errors.Is(err, ErrNotFound) {
		t.Errorf("detach of nothing: %v, want ErrNotFound", err)
	}
}
