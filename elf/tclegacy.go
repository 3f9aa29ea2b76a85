package elf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Legacy tc attachment, for kernels without TCX links (before 6.6): a
// clsact qdisc on the device and a direct-action cls_bpf filter with a
// priority of its own, deleted again by Link.Close.

const (
	tcHClsact       = 0xFFFFFFF1
	tcHIngress      = 0xFFFFFFF2
	tcHEgress       = 0xFFFFFFF3
	tcaKind         = 1
	tcaOptions      = 2
	tcaBPFFd        = 6
	tcaBPFName      = 7
	tcaBPFFlags     = 8
	tcaBPFActDirect = 1
	sizeofTcMsg     = 20
)

// tcPrio hands out filter priorities, distinct per process and per call.
var tcPrio atomic.Uint32

func init() { tcPrio.Store(uint32(0x4000 + os.Getpid()%0x3000)) }

// nlRequest sends one rtnetlink request and waits for its ack.
func nlRequest(typ, flags uint16, body []byte) error {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(s)
	_ = unix.SetsockoptInt(s, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	if err := unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	const seq = 1
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	msg = append(msg, body...)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	if err := unix.Sendto(s, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(s, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("netlink receive: %w", err)
		}
		if done, err := parseNetlinkAck(buf[:n], seq); done {
			return err
		}
	}
}

func tcMsg(ifindex int, handle, parent, info uint32) []byte {
	b := make([]byte, sizeofTcMsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(ifindex)))
	binary.NativeEndian.PutUint32(b[8:], handle)
	binary.NativeEndian.PutUint32(b[12:], parent)
	binary.NativeEndian.PutUint32(b[16:], info)
	return b
}

func u32attr(typ uint16, v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return nlAttr(typ, b)
}

// attachTCLegacy attaches progFd as a direct-action cls_bpf filter on
// ifindex (egress or ingress) and returns the function that removes it.
func attachTCLegacy(ifindex, progFd int, name string, egress bool) (func() error, error) {
	// clsact qdisc (an existing one is fine).
	q := append(tcMsg(ifindex, 0xFFFF0000, tcHClsact, 0), nlAttr(tcaKind, []byte("clsact\x00"))...)
	if err := nlRequest(unix.RTM_NEWQDISC, unix.NLM_F_CREATE, q); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("adding the clsact qdisc: %w", err)
	}
	parent := uint32(tcHIngress)
	if egress {
		parent = tcHEgress
	}
	prio := tcPrio.Add(1) & 0xFFFF
	const ethPAll = 0x0300 // htons(ETH_P_ALL)
	info := prio<<16 | ethPAll
	opts := append(u32attr(tcaBPFFd, uint32(progFd)), nlAttr(tcaBPFName, append([]byte(name), 0))...)
	opts = append(opts, u32attr(tcaBPFFlags, tcaBPFActDirect)...)
	f := append(tcMsg(ifindex, 1, parent, info), nlAttr(tcaKind, []byte("bpf\x00"))...)
	f = append(f, nlAttr(tcaOptions|unix.NLA_F_NESTED, opts)...)
	if err := nlRequest(unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_EXCL, f); err != nil {
		return nil, fmt.Errorf("adding the bpf filter: %w", err)
	}
	return func() error {
		d := append(tcMsg(ifindex, 1, parent, info), nlAttr(tcaKind, []byte("bpf\x00"))...)
		err := nlRequest(unix.RTM_DELTFILTER, 0, d)
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
			return nil // the device or its qdisc is gone, and the filter with it
		}
		return err
	}, nil
}
