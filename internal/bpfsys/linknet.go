package bpfsys

import "unsafe"

// LinkCreateTarget creates a BPF link attaching prog to target (a network
// device's ifindex for BPF_TCX_INGRESS/EGRESS, a cgroup fd, ...) and
// returns the link's fd: closing it detaches the program.
func LinkCreateTarget(progFd int, target uint32, typ AttachType, flags uint32) (int, error) {
	attr := struct {
		ProgFd     uint32
		Target     uint32
		AttachType uint32
		Flags      uint32
		Relative   uint32 // tcx: relative_fd / relative_id
		_          uint32
		ExpectRev  uint64 // tcx: expected_revision
	}{ProgFd: uint32(progFd), Target: target, AttachType: uint32(typ), Flags: flags}
	return Syscall(BPF_LINK_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}
