package bcc

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/iovisor/gobpf/internal/testutil"
)

const tcSource = `
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/in.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/pkt_cls.h>

BPF_ARRAY(counts, u64, 4);

static __always_inline int drop_udp(struct __sk_buff *skb, u16 port, int slot) {
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != htons(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return TC_ACT_OK;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end || udp->dest != htons(port))
		return TC_ACT_OK;
	u64 *c = counts.lookup(&slot);
	if (c)
		__sync_fetch_and_add(c, 1);
	return TC_ACT_SHOT;
}

int tc_ingress(struct __sk_buff *skb) { return drop_udp(skb, IN_PORT, 0); }
int tc_egress(struct __sk_buff *skb) { return drop_udp(skb, OUT_PORT, 1); }
`

const (
	tcInPort  = 9941
	tcOutPort = 9942
)

// tcSetup creates a veth pair (dev here, its peer in a namespace) with a
// UDP listener on each side of the dropped ports, and returns functions
// sending n datagrams each way.
type tcNet struct {
	dev, ns           string
	hostConn, nsConn  *net.UDPConn // listeners on IN_PORT (host) and OUT_PORT (ns)
	toHost, toNs      *net.UDPConn // senders
	devAddr, peerAddr string
}

func newTCNet(t *testing.T, tag string) *tcNet {
	n := &tcNet{dev: netName("gb" + tag), ns: netName("gobpf-bcc-" + tag + "-")}
	// Addresses unique per tag, so parallel test packages do not collide.
	sub := map[string]int{"tc": 41, "tx": 42, "rs": 43}[tag]
	n.devAddr, n.peerAddr = fmt.Sprintf("10.201.%d.1", sub), fmt.Sprintf("10.201.%d.2", sub)
	testutil.VethPair(t, n.ns, n.dev, netName("gp"+tag), n.devAddr, n.peerAddr)
	var err error
	n.hostConn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(n.devAddr), Port: tcInPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.hostConn.Close() })
	n.toNs, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(n.peerAddr), Port: tcOutPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.toNs.Close() })
	inNetns(t, n.ns, func() {
		n.nsConn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(n.peerAddr), Port: tcOutPort})
		if err != nil {
			return
		}
		n.toHost, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(n.devAddr), Port: tcInPort})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.nsConn.Close(); n.toHost.Close() })
	return n
}

// exchange sends k datagrams each way and returns how many arrived at
// each end (in: at the host, out: in the namespace).
func (n *tcNet) exchange(t *testing.T, k int, tag string) (in, out []string) {
	t.Helper()
	for i := 0; i < k; i++ {
		if _, err := n.toHost.Write([]byte(fmt.Sprintf("%s-in%d", tag, i))); err != nil {
			t.Fatal(err)
		}
		if _, err := n.toNs.Write([]byte(fmt.Sprintf("%s-out%d", tag, i))); err != nil {
			t.Fatal(err)
		}
	}
	wait := 300 * time.Millisecond
	want := 0
	if tag == "pass" {
		wait, want = 3*time.Second, k
	}
	return udpRecv(n.hostConn, want, wait), udpRecv(n.nsConn, want, wait)
}

// testTCDrop checks that with the filters attached every datagram to the
// two ports is dropped and counted, and that without them all arrive.
func testTCDrop(t *testing.T, m *Module, n *tcNet, attach, detach func(fd int, dir TCDirection) error) {
	t.Helper()
	in, out := n.exchange(t, 3, "pass")
	if len(in) != 3 || len(out) != 3 {
		t.Fatalf("before attach: %d in, %d out arrived, want 3 and 3", len(in), len(out))
	}
	ifd, err := m.LoadSchedCLS("tc_ingress")
	if err != nil {
		t.Fatal(err)
	}
	efd, err := m.LoadSchedCLS("tc_egress")
	if err != nil {
		t.Fatal(err)
	}
	if err := attach(ifd, TCIngress); err != nil {
		t.Fatal(err)
	}
	if err := attach(efd, TCEgress); err != nil {
		t.Fatal(err)
	}
	in0, out0 := lookupU64(t, m, "counts", 0), lookupU64(t, m, "counts", 1)
	const k = 7
	in, out = n.exchange(t, k, "drop")
	if len(in) != 0 || len(out) != 0 {
		t.Errorf("attached: received %q and %q, want nothing", in, out)
	}
	if got := lookupU64(t, m, "counts", 0) - in0; got != k {
		t.Errorf("ingress program dropped %d datagrams, want %d", got, k)
	}
	if got := lookupU64(t, m, "counts", 1) - out0; got != k {
		t.Errorf("egress program dropped %d datagrams, want %d", got, k)
	}
	if err := detach(ifd, TCIngress); err != nil {
		t.Fatal(err)
	}
	if err := detach(efd, TCEgress); err != nil {
		t.Fatal(err)
	}
	if err := detach(efd, TCEgress); err == nil {
		t.Error("second detach: no error")
	}
	in0, out0 = lookupU64(t, m, "counts", 0), lookupU64(t, m, "counts", 1)
	in, out = n.exchange(t, 3, "pass")
	if len(in) != 3 || len(out) != 3 {
		t.Errorf("after detach: %d in, %d out arrived, want 3 and 3", len(in), len(out))
	}
	if lookupU64(t, m, "counts", 0) != in0 || lookupU64(t, m, "counts", 1) != out0 {
		t.Error("programs still counted after detach")
	}
}

func newTCModule(t *testing.T) *Module {
	return mustNewModule(t, tcSource, fmt.Sprintf("-DIN_PORT=%d", tcInPort), fmt.Sprintf("-DOUT_PORT=%d", tcOutPort))
}

func TestTCClsact(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	n := newTCNet(t, "tc")
	m := newTCModule(t)
	defer m.Close()
	t.Run("errors", func(t *testing.T) { testTCErrors(t, m) })
	testTCDrop(t, m, n,
		func(fd int, dir TCDirection) error { return m.AttachTC(n.dev, fd, dir) },
		func(fd int, dir TCDirection) error {
			if dir == TCIngress {
				out := testutil.Run(t, "tc", "filter", "show", "dev", n.dev, "ingress")
				if !strings.Contains(out, "tc_ingress") || !strings.Contains(out, "direct-action") {
					t.Errorf("tc filter show dev %s ingress: no direct-action tc_ingress filter:\n%s", n.dev, out)
				}
			}
			return m.DetachTC(n.dev, fd, dir)
		})
	// The qdisc this module added went with its last filter.
	if out := testutil.Run(t, "tc", "qdisc", "show", "dev", n.dev); strings.Contains(out, "clsact") {
		t.Errorf("clsact qdisc left after detach:\n%s", out)
	}
	// Close removes what is still attached.
	fd, _ := m.LoadSchedCLS("tc_ingress")
	if err := m.AttachTC(n.dev, fd, TCIngress); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if out := testutil.Run(t, "tc", "qdisc", "show", "dev", n.dev); strings.Contains(out, "clsact") {
		t.Errorf("clsact qdisc left after Close:\n%s", out)
	}
	if in, _ := n.exchange(t, 2, "pass"); len(in) != 2 {
		t.Errorf("after Close: %d datagrams arrived, want 2", len(in))
	}
	if err := m.AttachTC(n.dev, fd, TCIngress); err == nil {
		t.Error("AttachTC after Close: no error")
	}
}

func testTCErrors(t *testing.T, m *Module) {
	fd, err := m.LoadSchedCLS("tc_ingress")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AttachTC("gbnosuch0", fd, TCIngress); !errors.Is(err, ErrNotFound) {
		t.Errorf("AttachTC to a missing device: %v, want ErrNotFound", err)
	}
	if err := m.AttachTCX("gbnosuch0", fd, TCIngress); !errors.Is(err, ErrNotFound) {
		t.Errorf("AttachTCX to a missing device: %v, want ErrNotFound", err)
	}
	if err := m.DetachTC("lo", fd, TCIngress); !errors.Is(err, ErrNotFound) {
		t.Errorf("DetachTC of nothing: %v, want ErrNotFound", err)
	}
	if err := m.AttachTC("lo", fd, TCDirection(7)); err == nil {
		t.Error("AttachTC with a bad direction: no error")
	}
}

func TestTCX(t *testing.T) {
	if !kernelAtLeast(6, 6) {
		t.Skip("kernel before 6.6 lacks TCX links")
	}
	t.Cleanup(testutil.CheckLeaks(t))
	n := newTCNet(t, "tx")
	m := newTCModule(t)
	defer m.Close()
	testTCDrop(t, m, n,
		func(fd int, dir TCDirection) error { return m.AttachTCX(n.dev, fd, dir) },
		func(fd int, dir TCDirection) error { return m.DetachTCX(n.dev, fd, dir) })
	fd, _ := m.LoadSchedCLS("tc_egress")
	if err := m.AttachTCX(n.dev, fd, TCEgress); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, out := n.exchange(t, 2, "pass"); len(out) != 2 {
		t.Errorf("after Close: %d datagrams arrived, want 2", len(out))
	}
}
