package bpfsys

import (
	"bytes"
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// btfLoadAttr is the BPF_BTF_LOAD member of union bpf_attr.
type btfLoadAttr struct {
	BTF            unsafe.Pointer
	BTFLogBuf      unsafe.Pointer
	BTFSize        uint32
	BTFLogSize     uint32
	BTFLogLevel    uint32
	BTFLogTrueSize uint32
}

// BTFLoad loads raw BTF into the kernel and returns its fd. The first try
// asks for no log; a rejection is retried once with a log, so the
// returned *VerifierError carries the kernel's BTF log.
func BTFLoad(btf []byte) (int, error) {
	if len(btf) == 0 {
		return -1, errors.New("bpfsys: empty BTF")
	}
	attr := btfLoadAttr{BTF: bytesPtr(btf), BTFSize: uint32(len(btf))}
	var level, size uint32
	for try := 0; ; try++ {
		var log []byte
		if level > 0 {
			log = make([]byte, size)
			attr.BTFLogBuf, attr.BTFLogSize, attr.BTFLogLevel = bytesPtr(log), size, level
		}
		fd, err := Syscall(BPF_BTF_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		keep(btf, log)
		if err == nil {
			return fd, nil
		}
		if errors.Is(err, unix.ENOSPC) && level > 0 && size < 1<<28 {
			size *= 4
			continue
		}
		if level == 0 && try == 0 && !errors.Is(err, unix.EPERM) {
			level, size = 1, 1<<16
			continue
		}
		if i := bytes.IndexByte(log, 0); i >= 0 {
			log = log[:i]
		}
		return -1, &VerifierError{Err: err, Log: string(log)}
	}
}
