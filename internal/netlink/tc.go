package netlink

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// Traffic control constants (include/uapi/linux/pkt_sched.h, rtnetlink.h,
// pkt_cls.h), which golang.org/x/sys/unix does not all have.
const (
	tcaKind    = 1 // TCA_KIND
	tcaOptions = 2 // TCA_OPTIONS

	tcaBPFFD    = 6  // TCA_BPF_FD
	tcaBPFName  = 7  // TCA_BPF_NAME
	tcaBPFFlags = 8  // TCA_BPF_FLAGS
	tcaBPFID    = 11 // TCA_BPF_ID

	tcaBPFFlagActDirect = 1 // TCA_BPF_FLAG_ACT_DIRECT

	// TCHClsact is the clsact qdisc's parent/handle major (TC_H_CLSACT).
	TCHClsact = 0xFFFFFFF1
	// TCHMinIngress and TCHMinEgress are the minor handles of clsact's two hooks.
	TCHMinIngress = 0xFFF2
	TCHMinEgress  = 0xFFF3

	sizeofTcMsg = 20
	ethPAll     = 0x0003 // ETH_P_ALL
)

// tcmsg builds a struct tcmsg.
func tcmsg(ifindex int, handle, parent, info uint32) []byte {
	b := make([]byte, sizeofTcMsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(ifindex)))
	binary.NativeEndian.PutUint32(b[8:], handle)
	binary.NativeEndian.PutUint32(b[12:], parent)
	binary.NativeEndian.PutUint32(b[16:], info)
	return b
}

// AddClsact adds a clsact qdisc to the device ifindex. It reports false,
// nil when the device has one already.
func AddClsact(ifindex int) (created bool, err error) {
	_, err = Do(Request{
		Type:   unix.RTM_NEWQDISC,
		Flags:  unix.NLM_F_CREATE | unix.NLM_F_EXCL,
		Header: tcmsg(ifindex, TCHClsact&0xFFFF0000, TCHClsact, 0),
		Attrs:  []Attr{String(tcaKind, "clsact")},
	})
	if errors.Is(err, unix.EEXIST) {
		return false, nil
	}
	return err == nil, err
}

// DelClsact removes the clsact qdisc of ifindex, with every filter on it.
func DelClsact(ifindex int) error {
	_, err := Do(Request{
		Type:   unix.RTM_DELQDISC,
		Header: tcmsg(ifindex, TCHClsact&0xFFFF0000, TCHClsact, 0),
		Attrs:  []Attr{String(tcaKind, "clsact")},
	})
	return err
}

// Filter identifies a tc filter: its device, parent (hook), priority and handle.
type Filter struct {
	Ifindex  int
	Parent   uint32
	Priority uint16
	Handle   uint32
	Kind     string
	ProgID   uint32 // for bpf filters, the program's id
	Name     string // for bpf filters, the name given at attach
}

// AddBPFFilter adds a bpf filter in direct-action mode running the program
// fd on hook parent of ifindex, for every protocol, and returns it with the
// priority and handle the kernel chose when priority or handle was 0.
func AddBPFFilter(ifindex int, parent uint32, priority uint16, handle uint32, fd int, name string) (Filter, error) {
	info := uint32(priority)<<16 | uint32(htons(ethPAll))
	msgs, err := Do(Request{
		Type:   unix.RTM_NEWTFILTER,
		Flags:  unix.NLM_F_CREATE | unix.NLM_F_EXCL | unix.NLM_F_ECHO,
		Header: tcmsg(ifindex, handle, parent, info),
		Attrs: []Attr{
			String(tcaKind, "bpf"),
			Nest(tcaOptions,
				U32(tcaBPFFD, uint32(fd)),
				String(tcaBPFName, name),
				U32(tcaBPFFlags, tcaBPFFlagActDirect)),
		},
	})
	if err != nil {
		return Filter{}, err
	}
	for _, m := range msgs {
		if f, ok := parseFilter(m); ok && m.Type == unix.RTM_NEWTFILTER {
			return f, nil
		}
	}
	return Filter{}, errors.New("netlink: the kernel did not echo the new filter")
}

// DelFilter removes the filter f (by device, parent, priority and handle).
func DelFilter(f Filter) error {
	info := uint32(f.Priority)<<16 | uint32(htons(ethPAll))
	attrs := []Attr(nil)
	if f.Kind != "" {
		attrs = append(attrs, String(tcaKind, f.Kind))
	}
	_, err := Do(Request{
		Type:   unix.RTM_DELTFILTER,
		Header: tcmsg(f.Ifindex, f.Handle, f.Parent, info),
		Attrs:  attrs,
	})
	return err
}

// Filters lists the filters on hook parent of ifindex.
func Filters(ifindex int, parent uint32) ([]Filter, error) {
	msgs, err := Do(Request{
		Type:   unix.RTM_GETTFILTER,
		Flags:  unix.NLM_F_DUMP,
		Header: tcmsg(ifindex, 0, parent, 0),
	})
	if err != nil {
		return nil, err
	}
	var out []Filter
	for _, m := range msgs {
		if f, ok := parseFilter(m); ok && f.Handle != 0 {
			out = append(out, f) // handle 0 is the per-priority chain head
		}
	}
	return out, nil
}

func parseFilter(m Message) (Filter, bool) {
	if len(m.Data) < sizeofTcMsg {
		return Filter{}, false
	}
	b := m.Data
	f := Filter{
		Ifindex:  int(int32(binary.NativeEndian.Uint32(b[4:]))),
		Handle:   binary.NativeEndian.Uint32(b[8:]),
		Parent:   binary.NativeEndian.Uint32(b[12:]),
		Priority: uint16(binary.NativeEndian.Uint32(b[16:]) >> 16),
	}
	for _, a := range ParseAttrs(b[sizeofTcMsg:]) {
		switch a.Type {
		case tcaKind:
			f.Kind = cstr(a.Data)
		case tcaOptions:
			for _, o := range ParseAttrs(a.Data) {
				switch o.Type {
				case tcaBPFID:
					if len(o.Data) >= 4 {
						f.ProgID = binary.NativeEndian.Uint32(o.Data)
					}
				case tcaBPFName:
					f.Name = cstr(o.Data)
				}
			}
		}
	}
	return f, true
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
