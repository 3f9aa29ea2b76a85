package elf

import (
	"errors"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

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

// progLoad loads a program through bpfsys.ProgLoad; a rejection is a
// *bpfsys.VerifierError with the verifier log (asked for on a retry, so
// that a successful load pays nothing for it).
func progLoad(o *progLoadOpts) (int, error) {
	if len(o.insns) == 0 {
		return -1, errors.New("program has no instructions")
	}
	size := o.logSize
	if size == 0 {
		size = defaultLogSize
	}
	return bpfsys.ProgLoad(&bpfsys.ProgLoadAttr{
		Type:               o.typ,
		Insns:              o.insns,
		License:            o.license,
		KernVersion:        o.kernVersion,
		Name:               o.name,
		ExpectedAttachType: o.attach,
		LogSize:            size,
		AttachBTFID:        o.attachBTFID,
		BTFFd:              o.btfFd,
		FuncInfo:           o.funcInfo,
		FuncInfoRecSize:    o.funcRecSize,
		LineInfo:           o.lineInfo,
		LineInfoRecSize:    o.lineRecSize,
	})
}
