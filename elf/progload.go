package elf

import (
	"bytes"
	"errors"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// progLoadAttr is the BPF_PROG_LOAD member of union bpf_attr up to
// log_true_size (kernel 6.4), with the BTF fields bpfsys.ProgLoad leaves out.
type progLoadAttr struct {
	ProgType           uint32
	InsnCnt            uint32
	Insns              unsafe.Pointer
	License            unsafe.Pointer
	LogLevel           uint32
	LogSize            uint32
	LogBuf             unsafe.Pointer
	KernVersion        uint32
	ProgFlags          uint32
	ProgName           [16]byte
	ProgIfindex        uint32
	ExpectedAttachType uint32
	ProgBTFFd          uint32
	FuncInfoRecSize    uint32
	FuncInfo           unsafe.Pointer
	FuncInfoCnt        uint32
	LineInfoRecSize    uint32
	LineInfo           unsafe.Pointer
	LineInfoCnt        uint32
	AttachBTFID        uint32
	AttachBTFObjFd     uint32
	CoreReloCnt        uint32
	FdArray            unsafe.Pointer
	CoreRelos          unsafe.Pointer
	CoreReloRecSize    uint32
	LogTrueSize        uint32
}

// progLoadOpts is a program to load with everything modern objects carry.
type progLoadOpts struct {
	typ         bpfsys.ProgType
	attach      bpfsys.AttachType
	insns       []bpfsys.Insn
	license     string
	kernVersion uint32
	name        string
	logSize     uint32
	attachBTFID uint32
	btfFd       int    // object BTF, -1 or 0 when none
	funcInfo    []byte // bpf_func_info records
	funcRecSize uint32
	lineInfo    []byte // bpf_line_info records
	lineRecSize uint32
}

func bptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// progLoad loads a program; a rejection is a *bpfsys.VerifierError with the
// verifier log (asked for on a retry, so that a successful load pays
// nothing for it).
func progLoad(o *progLoadOpts) (int, error) {
	if len(o.insns) == 0 {
		return -1, errors.New("program has no instructions")
	}
	lic := append([]byte(o.license), 0)
	attr := progLoadAttr{
		ProgType:           uint32(o.typ),
		InsnCnt:            uint32(len(o.insns)),
		Insns:              unsafe.Pointer(&o.insns[0]),
		License:            unsafe.Pointer(&lic[0]),
		KernVersion:        o.kernVersion,
		ExpectedAttachType: uint32(o.attach),
		AttachBTFID:        o.attachBTFID,
	}
	if o.btfFd > 0 {
		attr.ProgBTFFd = uint32(o.btfFd)
		if len(o.funcInfo) > 0 {
			attr.FuncInfo, attr.FuncInfoRecSize, attr.FuncInfoCnt = bptr(o.funcInfo), o.funcRecSize, uint32(len(o.funcInfo))/o.funcRecSize
		}
		if len(o.lineInfo) > 0 {
			attr.LineInfo, attr.LineInfoRecSize, attr.LineInfoCnt = bptr(o.lineInfo), o.lineRecSize, uint32(len(o.lineInfo))/o.lineRecSize
		}
	}
	setName(&attr.ProgName, o.name)
	size := o.logSize
	if size == 0 {
		size = defaultLogSize
	}
	var level uint32
	for try := 0; ; try++ {
		var log []byte
		if level > 0 {
			log = make([]byte, size)
			attr.LogLevel, attr.LogSize, attr.LogBuf = level, size, unsafe.Pointer(&log[0])
		}
		fd, err := bpfsys.Syscall(bpfsys.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		runtime.KeepAlive(o)
		runtime.KeepAlive(lic)
		runtime.KeepAlive(log)
		if err == nil {
			return fd, nil
		}
		if errors.Is(err, unix.ENOSPC) && level > 0 && size < 1<<30 {
			size *= 4
			continue
		}
		if level == 0 && try == 0 && !errors.Is(err, unix.EPERM) {
			level = 1
			continue
		}
		if i := bytes.IndexByte(log, 0); i >= 0 {
			log = log[:i]
		}
		return -1, &bpfsys.VerifierError{Err: err, Log: string(log)}
	}
}

// setName writes an object name the kernel accepts (letters, digits, '_'
// and '.', at most 15 bytes).
func setName(dst *[16]byte, name string) {
	n := 0
	for i := 0; i < len(name) && n < 15; i++ {
		c := name[i]
		if c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			dst[n] = c
			n++
		}
	}
}
