package bcc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iovisor/gobpf/internal/testutil"
)

const socketSource = `
#include <uapi/linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/udp.h>

BPF_ARRAY(counts, u64, 4);

static inline void add(int slot) {
	u64 *p = counts.lookup(&slot);
	if (p)
		__sync_fetch_and_add(p, 1);
}

/* On a UDP socket the packet starts at the UDP header: drop the datagrams
   whose payload starts with X. */
int udp_drop_x(struct __sk_buff *skb) {
	if (load_byte(skb, sizeof(struct udphdr)) == 'X') {
		add(0);
		return 0;
	}
	return -1;
}

/* On a raw packet socket it starts at the Ethernet header: keep only UDP
   datagrams to PORT, without options in their IP header. */
int raw_udp_port(struct __sk_buff *skb) {
	if (load_half(skb, 12) != ETH_P_IP || load_byte(skb, 14) != 0x45 ||
	    load_byte(skb, 14 + 9) != IPPROTO_UDP || load_half(skb, 14 + 20 + 2) != PORT)
		return 0;
	add(1);
	return -1;
}
`

func TestSocketFilter(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	m := mustNewModule(t, socketSource, fmt.Sprintf("-DPORT=%d", tcInPort))
	defer m.Close()
	fd, err := m.LoadSocketFilter("udp_drop_x")
	if err != nil {
		t.Fatal(err)
	}
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	send := func(msgs ...string) {
		for _, s := range msgs {
			if _, err := tx.Write([]byte(s)); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw, _ := rx.SyscallConn()
	withFd := func(f func(fd int) error) error {
		var ferr error
		if err := raw.Control(func(s uintptr) { ferr = f(int(s)) }); err != nil {
			t.Fatal(err)
		}
		return ferr
	}
	if err := withFd(func(s int) error { return m.AttachSocketFilter(s, fd) }); err != nil {
		t.Fatal(err)
	}
	n0 := lookupU64(t, m, "counts", 0)
	send("Xa", "ok1", "Xb", "Xc", "ok2")
	if got := udpRecv(rx, 2, 3*time.Second); strings.Join(got, ",") != "ok1,ok2" {
		t.Errorf("with the filter: received %q, want [ok1 ok2]", got)
	}
	if got := udpRecv(rx, 0, 200*time.Millisecond); len(got) != 0 {
		t.Errorf("with the filter: then received %q", got)
	}
	if got := lookupU64(t, m, "counts", 0) - n0; got != 3 {
		t.Errorf("filter dropped %d datagrams, want 3", got)
	}
	if err := withFd(m.DetachSocketFilter); err != nil {
		t.Fatal(err)
	}
	if err := withFd(m.DetachSocketFilter); !errors.Is(err, ErrNotFound) {
		t.Errorf("second detach: %v, want ErrNotFound", err)
	}
	send("Xd")
	if got := udpRecv(rx, 1, 3*time.Second); len(got) != 1 || got[0] != "Xd" {
		t.Errorf("after detach: received %q, want [Xd]", got)
	}
	// Close detaches it too.
	if err := withFd(func(s int) error { return m.AttachSocketFilter(s, fd) }); err != nil {
		t.Fatal(err)
	}
	if err := withFd(func(s int) error { return m.AttachSocketFilter(s, fd) }); err != nil {
		t.Fatal(err) // replaces the filter
	}
	if err := m.AttachSocketFilter(int(os.Stdin.Fd()), fd); err == nil {
		t.Error("attach to a non-socket: no error")
	}
	m.Close()
	send("Xe")
	if got := udpRecv(rx, 1, 3*time.Second); len(got) != 1 || got[0] != "Xe" {
		t.Errorf("after Close: received %q, want [Xe]", got)
	}
}

func TestRawSocket(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	n := newTCNet(t, "rs")
	m := mustNewModule(t, socketSource, fmt.Sprintf("-DPORT=%d", tcInPort))
	defer m.Close()
	fd, err := m.LoadSocketFilter("raw_udp_port")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AttachRawSocket("gbnosuch0", fd); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing device: %v, want ErrNotFound", err)
	}
	s, err := m.AttachRawSocket(n.dev, fd)
	if err != nil {
		t.Fatal(err)
	}
	n0 := lookupU64(t, m, "counts", 1)
	const k = 4
	in, out := n.exchange(t, k, "pass") // to port IN (seen) and OUT (filtered out)
	if len(in) != k || len(out) != k {
		t.Fatalf("%d and %d datagrams arrived, want %d", len(in), len(out), k)
	}
	buf := make([]byte, 2048)
	for i := 0; i < k; i++ {
		s.SetReadDeadline(time.Now().Add(3 * time.Second))
		l, err := s.Read(buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		want := fmt.Sprintf("pass-in%d", i)
		if l != 14+20+8+len(want) || string(buf[42:l]) != want {
			t.Errorf("packet %d: %d bytes ending %q, want a frame carrying %q", i, l, buf[42:l], want)
		}
	}
	s.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if l, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("then read %d bytes (%v), want nothing", l, err)
	}
	if got := lookupU64(t, m, "counts", 1) - n0; got != k {
		t.Errorf("filter kept %d packets, want %d", got, k)
	}
	if s.Fd() < 0 {
		t.Error("Fd of an open raw socket is negative")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Fd() != -1 {
		t.Error("Fd after Close is not -1")
	}
	// One more, closed by Module.Close.
	s2, err := m.AttachRawSocket(n.dev, fd)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, err := s2.Read(buf); err == nil {
		t.Error("read after Module.Close: no error")
	}
	s2.Close()
}
