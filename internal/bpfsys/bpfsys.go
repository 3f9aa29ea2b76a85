// Package bpfsys wraps the bpf(2) system call in pure Go (no cgo), for the
// elf package, the pkg helpers and the hot paths of the bcc package.
//
// Errors wrap the kernel's errno (match them with errors.Is against
// unix.ENOENT and friends) and name the command that failed.
package bpfsys

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Cmd is a bpf(2) command.
type Cmd uintptr

// bpf(2) commands, as numbered in include/uapi/linux/bpf.h.
const (
	BPF_MAP_CREATE Cmd = iota
	BPF_MAP_LOOKUP_ELEM
	BPF_MAP_UPDATE_ELEM
	BPF_MAP_DELETE_ELEM
	BPF_MAP_GET_NEXT_KEY
	BPF_PROG_LOAD
	BPF_OBJ_PIN
	BPF_OBJ_GET
	BPF_PROG_ATTACH
	BPF_PROG_DETACH
	BPF_PROG_TEST_RUN
	BPF_PROG_GET_NEXT_ID
	BPF_MAP_GET_NEXT_ID
	BPF_PROG_GET_FD_BY_ID
	BPF_MAP_GET_FD_BY_ID
	BPF_OBJ_GET_INFO_BY_FD
	BPF_PROG_QUERY
	BPF_RAW_TRACEPOINT_OPEN
	BPF_BTF_LOAD
	BPF_BTF_GET_FD_BY_ID
	BPF_TASK_FD_QUERY
	BPF_MAP_LOOKUP_AND_DELETE_ELEM
	BPF_MAP_FREEZE
	BPF_BTF_GET_NEXT_ID
	BPF_MAP_LOOKUP_BATCH
	BPF_MAP_LOOKUP_AND_DELETE_BATCH
	BPF_MAP_UPDATE_BATCH
	BPF_MAP_DELETE_BATCH
	BPF_LINK_CREATE
	BPF_LINK_UPDATE
	BPF_LINK_GET_FD_BY_ID
	BPF_LINK_GET_NEXT_ID
	BPF_ENABLE_STATS
	BPF_ITER_CREATE
	BPF_LINK_DETACH
)

var cmdNames = [...]string{
	"MAP_CREATE", "MAP_LOOKUP_ELEM", "MAP_UPDATE_ELEM", "MAP_DELETE_ELEM",
	"MAP_GET_NEXT_KEY", "PROG_LOAD", "OBJ_PIN", "OBJ_GET", "PROG_ATTACH",
	"PROG_DETACH", "PROG_TEST_RUN", "PROG_GET_NEXT_ID", "MAP_GET_NEXT_ID",
	"PROG_GET_FD_BY_ID", "MAP_GET_FD_BY_ID", "OBJ_GET_INFO_BY_FD",
	"PROG_QUERY", "RAW_TRACEPOINT_OPEN", "BTF_LOAD", "BTF_GET_FD_BY_ID",
	"TASK_FD_QUERY", "MAP_LOOKUP_AND_DELETE_ELEM", "MAP_FREEZE",
	"BTF_GET_NEXT_ID", "MAP_LOOKUP_BATCH", "MAP_LOOKUP_AND_DELETE_BATCH",
	"MAP_UPDATE_BATCH", "MAP_DELETE_BATCH", "LINK_CREATE", "LINK_UPDATE",
	"LINK_GET_FD_BY_ID", "LINK_GET_NEXT_ID", "ENABLE_STATS", "ITER_CREATE",
	"LINK_DETACH",
}

func (c Cmd) String() string {
	if int(c) < len(cmdNames) {
		return "BPF_" + cmdNames[c]
	}
	return fmt.Sprintf("BPF_CMD(%d)", uintptr(c))
}

// Error is a failed bpf(2) call. It unwraps to the errno.
type Error struct {
	Cmd   Cmd
	Errno unix.Errno
}

func (e *Error) Error() string { return fmt.Sprintf("bpf(%s): %v", e.Cmd, e.Errno) }
func (e *Error) Unwrap() error { return e.Errno }

// Syscall issues bpf(cmd, attr, size) and returns its result.
// attr must point to a struct laid out as the kernel's union bpf_attr member.
func Syscall(cmd Cmd, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return int(r), &Error{Cmd: cmd, Errno: errno}
	}
	return int(r), nil
}

// Pointers inside an attr are typed unsafe.Pointer (8 bytes, like the
// kernel's __aligned_u64 on 64-bit machines), never integers: the Go
// runtime then keeps what they point to alive and adjusts them when a
// goroutine's stack moves between building the attr and the syscall.
// An integer would keep pointing at the old stack.

// bytesPtr is a pointer to a slice's first element, or nil for an empty slice.
func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// cstring returns a NUL-terminated copy of s.
func cstring(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

// keep keeps Go memory referenced by an attr alive across the syscall.
func keep(v ...any) { runtime.KeepAlive(v) }
