// Package netlink is a small pure-Go rtnetlink client (no cgo), shared by
// the elf package (XDP) and the bcc package (XDP, tc clsact filters): it
// builds requests out of attributes, sends them on a NETLINK_ROUTE socket
// and reads the kernel's answer, with the extended-ack message the kernel
// attaches to an error.
package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Attr is one netlink attribute (struct nlattr / rtattr) with its payload;
// Nested holds its children instead of Data when not nil.
type Attr struct {
	Type   uint16
	Data   []byte
	Nested []Attr
}

// U32 returns an attribute holding v.
func U32(typ uint16, v uint32) Attr {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return Attr{Type: typ, Data: b}
}

// String returns an attribute holding s NUL-terminated.
func String(typ uint16, s string) Attr {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return Attr{Type: typ, Data: b}
}

// Nest returns a nested attribute (NLA_F_NESTED is set).
func Nest(typ uint16, children ...Attr) Attr {
	return Attr{Type: typ | unix.NLA_F_NESTED, Nested: children}
}

func align4(n int) int { return (n + 3) &^ 3 }

// appendAttrs appends the wire form of attrs to b.
func appendAttrs(b []byte, attrs []Attr) []byte {
	for _, a := range attrs {
		start := len(b)
		b = append(b, 0, 0, 0, 0)
		if a.Nested != nil {
			b = appendAttrs(b, a.Nested)
		} else {
			b = append(b, a.Data...)
		}
		binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
		binary.NativeEndian.PutUint16(b[start+2:], a.Type)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

// ParseAttrs splits b into attributes (one level; parse a nested
// attribute's Data again to descend). Malformed trailing bytes are ignored.
func ParseAttrs(b []byte) []Attr {
	var out []Attr
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.SizeofRtAttr || l > len(b) {
			break
		}
		out = append(out, Attr{Type: binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER), Data: b[unix.SizeofRtAttr:l]})
		if align4(l) >= len(b) {
			break
		}
		b = b[align4(l):]
	}
	return out
}

// Message is one netlink message of an answer.
type Message struct {
	Type  uint16
	Flags uint16
	Data  []byte // the payload after the netlink header
}

var seq atomic.Uint32

// Request is a request: a message type, flags (NLM_F_REQUEST and NLM_F_ACK
// are always added), a fixed header (ifinfomsg, tcmsg...) and attributes.
type Request struct {
	Type   uint16
	Flags  uint16
	Header []byte
	Attrs  []Attr
}

// Do sends r on a new NETLINK_ROUTE socket of the calling thread's network
// namespace and returns the messages answering it (for a dump, every
// message up to NLMSG_DONE; with NLM_F_ECHO, the echoed object) once the
// kernel acknowledged it. A refusal returns the kernel's errno (match it
// with errors.Is), with its extended-ack text when it gave one.
func Do(r Request) ([]Message, error) {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(s)
	// Ask for extended acks, so that errors come with the kernel's text.
	_ = unix.SetsockoptInt(s, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	if err := unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	sq := seq.Add(1)
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(r.Header)+64)
	msg = append(msg, r.Header...)
	for len(msg)%4 != 0 {
		msg = append(msg, 0)
	}
	msg = appendAttrs(msg, r.Attrs)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], r.Type)
	binary.NativeEndian.PutUint16(msg[6:], r.Flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], sq)
	if err := unix.Sendto(s, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	dump := r.Flags&unix.NLM_F_DUMP == unix.NLM_F_DUMP
	var out []Message
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(s, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		done, err := parse(buf[:n], sq, dump, &out)
		if done {
			return out, err
		}
	}
}

// parse reads the messages of a datagram answering sq, appending the
// non-control ones to out; done is set at the ack (or NLMSG_DONE of a dump).
func parse(b []byte, sq uint32, dump bool, out *[]Message) (done bool, err error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := binary.NativeEndian.Uint32(b[0:])
		typ := binary.NativeEndian.Uint16(b[4:])
		flags := binary.NativeEndian.Uint16(b[6:])
		s := binary.NativeEndian.Uint32(b[8:])
		if l < unix.NLMSG_HDRLEN || int(l) > len(b) {
			return true, errors.New("netlink: malformed answer")
		}
		body := b[unix.NLMSG_HDRLEN:l]
		if s == sq {
			switch typ {
			case unix.NLMSG_ERROR:
				if len(body) < 4 {
					return true, errors.New("netlink: short error message")
				}
				code := int32(binary.NativeEndian.Uint32(body))
				if code == 0 {
					if dump {
						break // a dump ends with NLMSG_DONE
					}
					return true, nil
				}
				err := error(unix.Errno(-code))
				if msg := extAckMsg(body, flags); msg != "" {
					err = fmt.Errorf("%w (%s)", err, msg)
				}
				return true, err
			case unix.NLMSG_DONE:
				return true, nil
			case unix.NLMSG_NOOP:
			default:
				*out = append(*out, Message{Type: typ, Flags: flags, Data: append([]byte(nil), body...)})
			}
		}
		adv := align4(int(l))
		if adv >= len(b) {
			break
		}
		b = b[adv:]
	}
	return false, nil
}

// extAckMsg extracts NLMSGERR_ATTR_MSG from an extended ack.
func extAckMsg(body []byte, flags uint16) string {
	if flags&unix.NLM_F_ACK_TLVS == 0 || len(body) < 4+unix.NLMSG_HDRLEN {
		return ""
	}
	off := 4 + unix.NLMSG_HDRLEN
	if flags&unix.NLM_F_CAPPED == 0 {
		off = 4 + int(binary.NativeEndian.Uint32(body[4:]))
	}
	off = align4(off)
	if off > len(body) {
		return ""
	}
	for _, a := range ParseAttrs(body[off:]) {
		if a.Type == unix.NLMSGERR_ATTR_MSG {
			return cstr(a.Data)
		}
	}
	return ""
}

// cstr returns b up to its first NUL.
func cstr(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// SetXDP sets (fd >= 0) or clears (fd -1) the XDP program of the device
// ifindex with an RTM_SETLINK request carrying IFLA_XDP{IFLA_XDP_FD,
// IFLA_XDP_FLAGS}.
func SetXDP(ifindex, fd int, flags uint32) error {
	inner := []Attr{U32(unix.IFLA_XDP_FD, uint32(int32(fd)))}
	if flags != 0 {
		inner = append(inner, U32(unix.IFLA_XDP_FLAGS, flags))
	}
	ifi := make([]byte, unix.SizeofIfInfomsg)
	ifi[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(ifi[4:], uint32(int32(ifindex)))
	_, err := Do(Request{Type: unix.RTM_SETLINK, Header: ifi, Attrs: []Attr{Nest(unix.IFLA_XDP, inner...)}})
	return err
}
