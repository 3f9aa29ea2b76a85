package bpfsys

import (
	"bytes"
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ProgType is a BPF program type (enum bpf_prog_type).
type ProgType uint32

// Program types.
const (
	BPF_PROG_TYPE_UNSPEC ProgType = iota
	BPF_PROG_TYPE_SOCKET_FILTER
	BPF_PROG_TYPE_KPROBE
	BPF_PROG_TYPE_SCHED_CLS
	BPF_PROG_TYPE_SCHED_ACT
	BPF_PROG_TYPE_TRACEPOINT
	BPF_PROG_TYPE_XDP
	BPF_PROG_TYPE_PERF_EVENT
	BPF_PROG_TYPE_CGROUP_SKB
	BPF_PROG_TYPE_CGROUP_SOCK
	BPF_PROG_TYPE_LWT_IN
	BPF_PROG_TYPE_LWT_OUT
	BPF_PROG_TYPE_LWT_XMIT
	BPF_PROG_TYPE_SOCK_OPS
	BPF_PROG_TYPE_SK_SKB
	BPF_PROG_TYPE_CGROUP_DEVICE
	BPF_PROG_TYPE_SK_MSG
	BPF_PROG_TYPE_RAW_TRACEPOINT
	BPF_PROG_TYPE_CGROUP_SOCK_ADDR
)

// AttachType is enum bpf_attach_type (a subset).
type AttachType uint32

// Attach types.
const (
	BPF_CGROUP_INET_INGRESS AttachType = iota
	BPF_CGROUP_INET_EGRESS
	BPF_CGROUP_INET_SOCK_CREATE
	BPF_CGROUP_SOCK_OPS
	BPF_SK_SKB_STREAM_PARSER
	BPF_SK_SKB_STREAM_VERDICT
	BPF_CGROUP_DEVICE
)

// Flags for BPF_PROG_ATTACH on cgroups.
const (
	BPF_F_ALLOW_OVERRIDE = 1 << 0
	BPF_F_ALLOW_MULTI    = 1 << 1
	BPF_F_REPLACE        = 1 << 2
)

// Insn is one eBPF instruction (struct bpf_insn).
type Insn struct {
	Code uint8
	Regs uint8 // dst_reg in the low nibble, src_reg in the high one
	Off  int16
	Imm  int32
}

// MovImm returns "dst = imm" (64-bit).
func MovImm(dst uint8, imm int32) Insn { return Insn{Code: 0xb7, Regs: dst & 0xf, Imm: imm} }

// Exit returns "exit".
func Exit() Insn { return Insn{Code: 0x95} }

// ProgLoadAttr describes a program to load.
type ProgLoadAttr struct {
	Type               ProgType
	Insns              []Insn
	License            string
	KernVersion        uint32
	Name               string
	ExpectedAttachType AttachType
	Ifindex            uint32
	// LogLevel and LogSize ask for the verifier log; when the load fails
	// without a log, ProgLoad retries once with level 1 to get one.
	LogLevel uint32
	LogSize  uint32
	// AttachBTFID is the kernel BTF id of the attach target (fentry, LSM,
	// tp_btf, iterators).
	AttachBTFID uint32
	// BTFFd (> 0) is the program's BTF, which FuncInfo and LineInfo
	// (records of FuncInfoRecSize and LineInfoRecSize bytes) refer to.
	BTFFd           int
	FuncInfo        []byte
	FuncInfoRecSize uint32
	LineInfo        []byte
	LineInfoRecSize uint32
}

// progLoadAttr is the BPF_PROG_LOAD member of union bpf_attr up to
// log_true_size (kernel 6.4); older kernels accept it as long as what they
// do not know is zero.
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

// VerifierError is a program load the kernel rejected, with the verifier's log.
type VerifierError struct {
	Err error // the bpf(2) error
	Log string
}

func (e *VerifierError) Error() string {
	if e.Log == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + "\nverifier log:\n" + e.Log
}

func (e *VerifierError) Unwrap() error { return e.Err }

// ProgLoad loads a program and returns its fd. A rejection returns a
// *VerifierError carrying the verifier log.
func ProgLoad(a *ProgLoadAttr) (int, error) {
	if len(a.Insns) == 0 {
		return -1, errors.New("bpfsys: program has no instructions")
	}
	lic := cstring(a.License)
	attr := progLoadAttr{
		ProgType:           uint32(a.Type),
		InsnCnt:            uint32(len(a.Insns)),
		Insns:              unsafe.Pointer(&a.Insns[0]),
		License:            bytesPtr(lic),
		KernVersion:        a.KernVersion,
		ProgIfindex:        a.Ifindex,
		ExpectedAttachType: uint32(a.ExpectedAttachType),
		AttachBTFID:        a.AttachBTFID,
	}
	if a.BTFFd > 0 {
		attr.ProgBTFFd = uint32(a.BTFFd)
		if len(a.FuncInfo) > 0 && a.FuncInfoRecSize > 0 {
			attr.FuncInfo, attr.FuncInfoRecSize, attr.FuncInfoCnt = bytesPtr(a.FuncInfo), a.FuncInfoRecSize, uint32(len(a.FuncInfo))/a.FuncInfoRecSize
		}
		if len(a.LineInfo) > 0 && a.LineInfoRecSize > 0 {
			attr.LineInfo, attr.LineInfoRecSize, attr.LineInfoCnt = bytesPtr(a.LineInfo), a.LineInfoRecSize, uint32(len(a.LineInfo))/a.LineInfoRecSize
		}
	}
	setObjName(&attr.ProgName, a.Name)
	level, size := a.LogLevel, a.LogSize
	for try := 0; ; try++ {
		var log []byte
		if level > 0 {
			if size == 0 {
				size = 1 << 20
			}
			log = make([]byte, size)
			attr.LogLevel, attr.LogSize, attr.LogBuf = level, size, bytesPtr(log)
		}
		fd, err := Syscall(BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		keep(a.Insns, lic, log, a.FuncInfo, a.LineInfo)
		if err == nil {
			return fd, nil
		}
		if errors.Is(err, unix.ENOSPC) && level > 0 && size < 1<<30 {
			size *= 4 // log buffer too small: grow it
			continue
		}
		if level == 0 && try == 0 && !errors.Is(err, unix.EPERM) {
			level = 1
			continue
		}
		if i := bytes.IndexByte(log, 0); i >= 0 {
			log = log[:i]
		}
		return -1, &VerifierError{Err: err, Log: string(log)}
	}
}

// ObjPin pins fd at path on a bpffs.
func ObjPin(fd int, path string) error {
	_, err := objPath(BPF_OBJ_PIN, path, fd)
	return err
}

// ObjGet opens the object pinned at path.
func ObjGet(path string) (int, error) {
	return objPath(BPF_OBJ_GET, path, 0)
}

// objPath issues BPF_OBJ_PIN or BPF_OBJ_GET for path and fd.
func objPath(cmd Cmd, path string, fd int) (int, error) {
	p := cstring(path)
	attr := struct {
		Pathname  unsafe.Pointer
		BpfFd     uint32
		FileFlags uint32
	}{Pathname: bytesPtr(p), BpfFd: uint32(fd)}
	r, err := Syscall(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	keep(p)
	return r, err
}

type progAttachAttr struct {
	TargetFd     uint32
	AttachBpfFd  uint32
	AttachType   uint32
	AttachFlags  uint32
	ReplaceBpfFd uint32
}

// ProgAttach attaches prog to target (a cgroup fd, a sockmap...).
func ProgAttach(targetFd, progFd int, typ AttachType, flags uint32) error {
	attr := progAttachAttr{TargetFd: uint32(targetFd), AttachBpfFd: uint32(progFd), AttachType: uint32(typ), AttachFlags: flags}
	_, err := Syscall(BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// ProgDetach detaches prog from target.
func ProgDetach(targetFd, progFd int, typ AttachType) error {
	attr := progAttachAttr{TargetFd: uint32(targetFd), AttachBpfFd: uint32(progFd), AttachType: uint32(typ)}
	_, err := Syscall(BPF_PROG_DETACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// RawTracepointOpen attaches a raw tracepoint program and returns the
// attachment's fd; closing it detaches.
func RawTracepointOpen(name string, progFd int) (int, error) {
	n := cstring(name)
	attr := struct {
		Name   unsafe.Pointer
		ProgFd uint32
		_      uint32
	}{Name: bytesPtr(n), ProgFd: uint32(progFd)}
	fd, err := Syscall(BPF_RAW_TRACEPOINT_OPEN, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	keep(n)
	return fd, err
}

// TestRunAttr is BPF_PROG_TEST_RUN's input and output.
type TestRunAttr struct {
	ProgFd  int
	DataIn  []byte
	DataOut []byte // may be nil
	CtxIn   []byte
	CtxOut  []byte
	Repeat  uint32
	Flags   uint32

	// Filled in on return.
	Retval      uint32
	DataSizeOut uint32 // bytes the program produced (may exceed len(DataOut))
	CtxSizeOut  uint32
	Duration    uint32 // average ns per run
}

// ProgTestRun runs a program on a test input (BPF_PROG_TEST_RUN).
func ProgTestRun(a *TestRunAttr) error {
	attr := struct {
		ProgFd      uint32
		Retval      uint32
		DataSizeIn  uint32
		DataSizeOut uint32
		DataIn      unsafe.Pointer
		DataOut     unsafe.Pointer
		Repeat      uint32
		Duration    uint32
		CtxSizeIn   uint32
		CtxSizeOut  uint32
		CtxIn       unsafe.Pointer
		CtxOut      unsafe.Pointer
		Flags       uint32
		CPU         uint32
		BatchSize   uint32
		_           uint32
	}{
		ProgFd:      uint32(a.ProgFd),
		DataSizeIn:  uint32(len(a.DataIn)),
		DataSizeOut: uint32(len(a.DataOut)),
		DataIn:      bytesPtr(a.DataIn),
		DataOut:     bytesPtr(a.DataOut),
		Repeat:      a.Repeat,
		CtxSizeIn:   uint32(len(a.CtxIn)),
		CtxSizeOut:  uint32(len(a.CtxOut)),
		CtxIn:       bytesPtr(a.CtxIn),
		CtxOut:      bytesPtr(a.CtxOut),
		Flags:       a.Flags,
	}
	_, err := Syscall(BPF_PROG_TEST_RUN, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	keep(a.DataIn, a.DataOut, a.CtxIn, a.CtxOut)
	a.Retval, a.DataSizeOut, a.CtxSizeOut, a.Duration = attr.Retval, attr.DataSizeOut, attr.CtxSizeOut, attr.Duration
	return err
}
