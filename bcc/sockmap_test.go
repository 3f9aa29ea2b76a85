package bcc

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/iovisor/gobpf/internal/testutil"
)

const sockmapSource = `
#include <uapi/linux/bpf.h>

BPF_SOCKHASH(msg_hash, u32, 8);
BPF_SOCKHASH(skb_hash, u32, 8);
BPF_SOCKMAP(plain_map, 8);
BPF_ARRAY(counts, u64, 8);

static inline void add(int slot, u64 v) {
	u64 *p = counts.lookup(&slot);
	if (p)
		__sync_fetch_and_add(p, v);
}

/* Every message sent on a socket of msg_hash goes to the receive queue of
   the socket at key 1. */
int msg_redirect(struct sk_msg_md *msg) {
	u32 key = 1;
	add(0, 1);
	add(1, msg->size);
	return msg_hash.msg_redirect_hash(msg, &key, BPF_F_INGRESS);
}

int skb_parser(struct __sk_buff *skb) {
	add(2, 1);
	return skb->len;
}

/* What a socket of skb_hash receives is sent out by the socket at key 1. */
int skb_verdict(struct __sk_buff *skb) {
	u32 key = 1;
	add(3, 1);
	return skb_hash.sk_redirect_hash(skb, &key, 0);
}

int skb_count(struct __sk_buff *skb) {
	add(4, 1);
	return SK_PASS;
}
`

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.DialTCP("tcp4", nil, l.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// setSocket puts c at key k of table name.
func setSocket(t *testing.T, m *Module, name string, k uint32, c syscall.Conn) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var key [4]byte
	binary.NativeEndian.PutUint32(key[:], k)
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = NewTable(m.TableId(name), m).SetSocket(key[:], int(fd))
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
}

// readExactly reads len(want) bytes from c and checks them.
func readExactly(t *testing.T, c net.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, len(want))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != want {
		t.Fatalf("read %q, %v; want %q", b, err, want)
	}
}

// nothingToRead checks that c receives nothing within a short while.
func nothingToRead(t *testing.T, c net.Conn, who string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	b := make([]byte, 64)
	if n, err := c.Read(b); n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%s received %q (%v), want nothing", who, b[:n], err)
	}
}

func TestSockMap(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	m := mustNewModule(t, sockmapSource)
	defer m.Close()

	t.Run("sk_msg", func(t *testing.T) {
		fd, err := m.LoadSkMsg("msg_redirect")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachSockMap("msg_hash", fd, BPF_SK_MSG_VERDICT); err != nil {
			t.Fatal(err)
		}
		a, aPeer := tcpPair(t)
		b, _ := tcpPair(t)
		setSocket(t, m, "msg_hash", 0, a)
		setSocket(t, m, "msg_hash", 1, b)
		n0, b0 := lookupU64(t, m, "counts", 0), lookupU64(t, m, "counts", 1)
		msgs := []string{"hello", "from socket A", "to B"}
		total := 0
		for _, s := range msgs {
			if _, err := a.Write([]byte(s)); err != nil {
				t.Fatal(err)
			}
			readExactly(t, b, s) // redirected into B's receive queue
			total += len(s)
		}
		nothingToRead(t, aPeer, "A's peer")
		if got := lookupU64(t, m, "counts", 0) - n0; got != uint64(len(msgs)) {
			t.Errorf("sk_msg program ran %d times, want %d", got, len(msgs))
		}
		if got := lookupU64(t, m, "counts", 1) - b0; got != uint64(total) {
			t.Errorf("sk_msg program saw %d bytes, want %d", got, total)
		}
		if err := m.DetachSockMap("msg_hash", fd, BPF_SK_MSG_VERDICT); err != nil {
			t.Fatal(err)
		}
		if err := m.DetachSockMap("msg_hash", fd, BPF_SK_MSG_VERDICT); !errors.Is(err, ErrNotFound) {
			t.Errorf("second detach: %v, want ErrNotFound", err)
		}
		// A socket added after the detach is not redirected.
		c, cPeer := tcpPair(t)
		setSocket(t, m, "msg_hash", 2, c)
		c.Write([]byte("direct"))
		readExactly(t, cPeer, "direct")
		if got := lookupU64(t, m, "counts", 0) - n0; got != uint64(len(msgs)) {
			t.Errorf("sk_msg program ran %d times after detach, want %d in all", got, len(msgs))
		}
	})

	t.Run("sk_skb", func(t *testing.T) {
		pfd, err := m.LoadSkSkb("skb_parser")
		if err != nil {
			t.Fatal(err)
		}
		vfd, err := m.LoadSkSkb("skb_verdict")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachSockMap("skb_hash", pfd, BPF_SK_SKB_STREAM_PARSER); err != nil {
			t.Fatal(err)
		}
		if err := m.AttachSockMap("skb_hash", vfd, BPF_SK_SKB_STREAM_VERDICT); err != nil {
			t.Fatal(err)
		}
		// What c1 sends is received by s1, whose verdict program sends it
		// out of s2: c2 reads it.
		c1, s1 := tcpPair(t)
		c2, s2 := tcpPair(t)
		setSocket(t, m, "skb_hash", 0, s1)
		setSocket(t, m, "skb_hash", 1, s2)
		p0, v0 := lookupU64(t, m, "counts", 2), lookupU64(t, m, "counts", 3)
		msgs := []string{"one", "two two", "three three three"}
		for _, s := range msgs {
			if _, err := c1.Write([]byte(s)); err != nil {
				t.Fatal(err)
			}
			readExactly(t, c2, s)
		}
		nothingToRead(t, s1, "s1")
		if got := lookupU64(t, m, "counts", 3) - v0; got != uint64(len(msgs)) {
			t.Errorf("verdict program ran %d times, want %d", got, len(msgs))
		}
		if got := lookupU64(t, m, "counts", 2) - p0; got != uint64(len(msgs)) {
			t.Errorf("parser program ran %d times, want %d", got, len(msgs))
		}
	})

	t.Run("sockmap", func(t *testing.T) {
		fd, err := m.LoadSkSkb("skb_count")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachSockMap("plain_map", fd, BPF_SK_SKB_STREAM_VERDICT); err != nil {
			t.Fatal(err)
		}
		c, s := tcpPair(t)
		setSocket(t, m, "plain_map", 3, s)
		n0 := lookupU64(t, m, "counts", 4)
		for _, msg := range []string{"a", "bb", "ccc", "dddd"} {
			c.Write([]byte(msg))
			readExactly(t, s, msg) // SK_PASS: delivered as usual
		}
		if got := lookupU64(t, m, "counts", 4) - n0; got != 4 {
			t.Errorf("sockmap verdict program ran %d times, want 4", got)
		}
		if err := m.AttachSockMap("counts", fd, BPF_SK_SKB_STREAM_VERDICT); err == nil {
			t.Error("attach to an array: no error")
		}
		if err := m.AttachSockMap("nosuch", fd, BPF_SK_SKB_STREAM_VERDICT); !errors.Is(err, ErrNotFound) {
			t.Errorf("attach to a missing table: %v, want ErrNotFound", err)
		}
	})
	m.Close()
	if err := m.AttachSockMap("plain_map", 3, BPF_SK_SKB_STREAM_VERDICT); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}
