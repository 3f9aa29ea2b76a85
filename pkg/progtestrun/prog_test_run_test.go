package progtestrun

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
	"golang.org/x/sys/unix"
)

const (
	xdpAborted = 0
	xdpDrop    = 1
	xdpPass    = 2
	xdpTX      = 3
)

// insn builds one instruction.
func insn(code, dst, src uint8, off int16, imm int32) bpfsys.Insn {
	return bpfsys.Insn{Code: code, Regs: dst&0xf | src<<4, Off: off, Imm: imm}
}

func load(t *testing.T, typ bpfsys.ProgType, insns ...bpfsys.Insn) int {
	t.Helper()
	fd, err := bpfsys.ProgLoad(&bpfsys.ProgLoadAttr{Type: typ, Insns: insns, License: "GPL", Name: "progtestrun"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// packet returns a 64-byte Ethernet frame with a recognisable payload.
func packet() []byte {
	p := make([]byte, 64)
	copy(p, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x00})
	for i := 14; i < len(p); i++ {
		p[i] = byte(i)
	}
	return p
}

func TestXDP(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t)) // runs after load's cleanups
	for _, ret := range []int32{xdpDrop, xdpPass} {
		fd := load(t, bpfsys.BPF_PROG_TYPE_XDP, bpfsys.MovImm(0, ret), bpfsys.Exit())
		in := packet()
		out := make([]byte, 128)
		rv, dur, size, err := Run(fd, 1, in, out)
		if err != nil {
			t.Fatal(err)
		}
		if rv != int(ret) || size != 64 || dur < 0 {
			t.Fatalf("XDP returning %d: retval %d, size %d, duration %d", ret, rv, size, dur)
		}
		if !bytes.Equal(out[:size], in) || !bytes.Equal(out[size:], make([]byte, 64)) {
			t.Fatalf("dataOut = %x, want %x then zeros", out, in)
		}
		if !bytes.Equal(in, packet()) {
			t.Fatal("Run modified dataIn")
		}
	}
}

// TestXDPWritesPacket: a program that bounds-checks and rewrites the first
// byte of the packet; dataOut shows the change.
func TestXDPWritesPacket(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t)) // runs after load's cleanups
	fd := load(t, bpfsys.BPF_PROG_TYPE_XDP,
		insn(0x61, 2, 1, 0, 0),       // r2 = ctx->data
		insn(0x61, 3, 1, 4, 0),       // r3 = ctx->data_end
		insn(0xbf, 4, 2, 0, 0),       // r4 = r2
		insn(0x07, 4, 0, 0, 1),       // r4 += 1
		bpfsys.MovImm(0, xdpAborted), // r0 = XDP_ABORTED
		insn(0x2d, 4, 3, 2, 0),       // if r4 > r3 goto exit
		insn(0x72, 2, 0, 0, 0xab),    // *(u8 *)(r2 + 0) = 0xab
		bpfsys.MovImm(0, xdpTX),      // r0 = XDP_TX
		bpfsys.Exit(),
	)
	in := packet()
	out := make([]byte, 64)
	rv, _, size, err := Run(fd, 1, in, out)
	if err != nil {
		t.Fatal(err)
	}
	want := packet()
	want[0] = 0xab
	if rv != xdpTX || size != 64 || !bytes.Equal(out, want) {
		t.Fatalf("retval %d size %d out %x; want %d 64 %x", rv, size, out, xdpTX, want)
	}
}

// TestXDPAdjustHead: bpf_xdp_adjust_head(ctx, 14) strips the Ethernet
// header, so the output is 14 bytes shorter.
func TestXDPAdjustHead(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t)) // runs after load's cleanups
	fd := load(t, bpfsys.BPF_PROG_TYPE_XDP,
		bpfsys.MovImm(2, 14),      // r2 = 14 (r1 is still ctx)
		insn(0x85, 0, 0, 0, 44),   // call bpf_xdp_adjust_head
		bpfsys.MovImm(0, xdpPass), // r0 = XDP_PASS
		bpfsys.Exit(),
	)
	in := packet()
	out := make([]byte, 64)
	rv, _, size, err := Run(fd, 1, in, out)
	if err != nil {
		t.Fatal(err)
	}
	if rv != xdpPass || size != 50 || !bytes.Equal(out[:size], in[14:]) {
		t.Fatalf("retval %d size %d out %x; want %d 50 %x", rv, size, out[:size], xdpPass, in[14:])
	}
}

// TestRepeat: a program that counts its runs in an array map runs exactly
// repeat times.
func TestRepeat(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t)) // runs after load's cleanups
	ma := bpfsys.MapCreateAttr{MapType: bpfsys.BPF_MAP_TYPE_ARRAY, KeySize: 4, ValueSize: 8, MaxEntries: 1}
	ma.SetName("progtestrun")
	mfd, err := bpfsys.MapCreate(&ma)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(mfd)
	fd := load(t, bpfsys.BPF_PROG_TYPE_XDP,
		insn(0x18, 1, 1, 0, int32(mfd)), insn(0, 0, 0, 0, 0), // r1 = map
		insn(0x62, 10, 0, -4, 0), // *(u32 *)(r10 - 4) = 0
		insn(0xbf, 2, 10, 0, 0),  // r2 = r10
		insn(0x07, 2, 0, 0, -4),  // r2 += -4
		insn(0x85, 0, 0, 0, 1),   // call bpf_map_lookup_elem
		insn(0x15, 0, 0, 2, 0),   // if r0 == 0 goto exit
		bpfsys.MovImm(1, 1),      // r1 = 1
		insn(0xdb, 0, 1, 0, 0),   // lock *(u64 *)(r0 + 0) += r1
		bpfsys.MovImm(0, xdpPass),
		bpfsys.Exit(),
	)
	var total uint64
	for _, repeat := range []int{0, 1, 1000} {
		rv, dur, size, err := Run(fd, repeat, packet(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if rv != xdpPass || size != 64 || dur < 0 {
			t.Fatalf("repeat %d: retval %d size %d duration %d", repeat, rv, size, dur)
		}
		total += uint64(max(repeat, 1))
		var key uint32
		var n uint64
		if err := bpfsys.MapLookupElem(mfd, unsafe.Pointer(&key), unsafe.Pointer(&n)); err != nil {
			t.Fatal(err)
		}
		if n != total {
			t.Fatalf("after repeat %d the program has run %d times, want %d", repeat, n, total)
		}
	}
}

// TestSocketFilter: a socket filter returning skb->len, which for a socket
// filter counts from the network header: the Ethernet header is pulled.
func TestSocketFilter(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t)) // runs after load's cleanups
	fd := load(t, bpfsys.BPF_PROG_TYPE_SOCKET_FILTER,
		insn(0x61, 0, 1, 0, 0), // r0 = skb->len
		bpfsys.Exit(),
	)
	for _, n := range []int{34, 64, 1500} { // IPv4: at least a 20-byte IP header
		in := make([]byte, n)
		copy(in, packet())
		out := make([]byte, 2048)
		rv, _, size, err := Run(fd, 1, in, out)
		if err != nil {
			t.Fatalf("%d-byte packet: %v", n, err)
		}
		// The kernel hands back the Ethernet header zeroed: a socket filter
		// sees the packet from layer 3.
		want := append(make([]byte, 14), in[14:]...)
		if rv != n-14 || size != n || !bytes.Equal(out[:size], want) {
			t.Fatalf("%d-byte packet: retval %d size %d; want %d %d\nout %x\nin  %x", n, rv, size, n-14, n, out[:size], in)
		}
	}
	// Too short for an Ethernet header, or for the IPv4 header the
	// EtherType announces: the kernel refuses it.
	for _, n := range []int{10, 14, 33} {
		if _, _, _, err := Run(fd, 1, packet()[:n], nil); !errors.Is(err, unix.EINVAL) {
			t.Fatalf("%d-byte skb: %v, want EINVAL", n, err)
		}
	}
}

func TestOutputTooSmall(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t)) // runs after load's cleanups
	fd := load(t, bpfsys.BPF_PROG_TYPE_XDP, bpfsys.MovImm(0, xdpPass), bpfsys.Exit())
	in := packet()
	out := make([]byte, 16)
	rv, _, size, err := Run(fd, 1, in, out)
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "64 bytes") {
		t.Fatalf("16-byte dataOut: %v, want ENOSPC naming the size", err)
	}
	if rv != xdpPass || size != 64 || !bytes.Equal(out, in[:16]) {
		t.Fatalf("retval %d size %d out %x", rv, size, out)
	}
}

func TestBadInput(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t)) // runs after load's cleanups
	fd := load(t, bpfsys.BPF_PROG_TYPE_XDP, bpfsys.MovImm(0, xdpPass), bpfsys.Exit())
	for _, tc := range []struct {
		name   string
		fd     int
		repeat int
		data   []byte
		want   string
	}{
		{"nil data", fd, 1, nil, "no input data"},
		{"empty data", fd, 1, []byte{}, "no input data"},
		{"negative repeat", fd, -1, packet(), "repeat count -1"},
		{"negative fd", -1, 1, packet(), "bad program fd"},
		{"not an fd", 1 << 20, 1, packet(), "bad file descriptor"},
	} {
		rv, _, _, err := Run(tc.fd, tc.repeat, tc.data, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || rv != -1 {
			t.Errorf("%s: %d, %v; want -1 and an error with %q", tc.name, rv, err, tc.want)
		}
	}
	// A map fd is not a program.
	ma := bpfsys.MapCreateAttr{MapType: bpfsys.BPF_MAP_TYPE_ARRAY, KeySize: 4, ValueSize: 8, MaxEntries: 1}
	mfd, err := bpfsys.MapCreate(&ma)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(mfd)
	if _, _, _, err := Run(mfd, 1, packet(), nil); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("map fd: %v, want EINVAL", err)
	}
}
