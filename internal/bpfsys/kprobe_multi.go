package bpfsys

import (
	"errors"
	"unsafe"
)

// BPF_TRACE_KPROBE_MULTI is the attach type (enum bpf_attach_type) of
// kprobe.multi links; kprobe programs for them are loaded with it as their
// expected attach type.
const BPF_TRACE_KPROBE_MULTI AttachType = 42

// BPF_F_KPROBE_MULTI_RETURN makes a kprobe.multi link probe the functions'
// returns.
const BPF_F_KPROBE_MULTI_RETURN = 1 << 0

// kprobeMultiLinkAttr is union bpf_attr's link_create with its kprobe_multi
// member.
type kprobeMultiLinkAttr struct {
	ProgFd     uint32
	TargetFd   uint32
	AttachType uint32
	Flags      uint32
	KFlags     uint32
	Cnt        uint32
	Syms       unsafe.Pointer // const char **
	Addrs      unsafe.Pointer // unsigned long *
	Cookies    unsafe.Pointer // __u64 *
}

// KprobeMultiLinkCreate attaches the kprobe program progFd (loaded with
// expected attach type BPF_TRACE_KPROBE_MULTI) to every kernel function in
// syms with one link (Linux 5.18, CONFIG_FPROBE) and returns the link's fd;
// closing it detaches. flags is 0 or BPF_F_KPROBE_MULTI_RETURN.
func KprobeMultiLinkCreate(progFd int, syms []string, flags uint32) (int, error) {
	if len(syms) == 0 {
		return -1, errors.New("bpfsys: kprobe.multi link without functions")
	}
	// The names live in one buffer; the pointer array points into it.
	size := 0
	for _, s := range syms {
		size += len(s) + 1
	}
	buf := make([]byte, size)
	ptrs := make([]unsafe.Pointer, len(syms))
	off := 0
	for i, s := range syms {
		copy(buf[off:], s)
		ptrs[i] = unsafe.Pointer(&buf[off])
		off += len(s) + 1
	}
	attr := kprobeMultiLinkAttr{
		ProgFd:     uint32(progFd),
		AttachType: uint32(BPF_TRACE_KPROBE_MULTI),
		KFlags:     flags,
		Cnt:        uint32(len(syms)),
		Syms:       unsafe.Pointer(&ptrs[0]),
	}
	fd, err := Syscall(BPF_LINK_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	keep(buf, ptrs)
	return fd, err
}
