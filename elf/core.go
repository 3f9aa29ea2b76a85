package elf

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/btf"
)

// BTF and CO-RE at load time, on internal/btf: the object's BTF is loaded
// into the kernel so that programs carry func_info and line_info (a
// verifier rejection then shows source lines), and CO-RE relocations are
// applied against the running kernel's BTF (or LoadOptions.KernelBTF).

// LoadOptions are Load's parameters beside the per-section ones.
type LoadOptions struct {
	// Params are Load's per-section parameters.
	Params map[string]SectionParams
	// KernelBTF is a BTF file describing the target kernel, for kernels
	// without /sys/kernel/btf/vmlinux: raw BTF (`bpftool btf dump file
	// ... format raw`, BTFHub) or an ELF file with a .BTF section. ""
	// uses /sys/kernel/btf/vmlinux.
	KernelBTF string
	// NoObjectBTF skips loading the object's BTF into the kernel (no
	// func_info/line_info); CO-RE relocations are applied regardless.
	NoObjectBTF bool
}

// LoadWithOptions is Load with LoadOptions.
func (b *Module) LoadWithOptions(opts LoadOptions) error {
	b.mu.Lock()
	b.x.opts = opts
	b.mu.Unlock()
	return b.Load(opts.Params)
}

// objBTF is the object's parsed BTF and its kernel fd.
type objBTF struct {
	local  *btf.Spec
	ext    *btf.Ext
	fd     int   // -1 when not loaded into the kernel
	loadEr error // why the BTF is not in the kernel
	kernel *btf.Spec
}

// dataSecs collects, for each allocated section, its size and the offsets
// of its object symbols (what clang leaves out of BTF DATASECs).
func (p *parser) dataSecs() map[string]btf.DataSec {
	out := map[string]btf.DataSec{}
	if _, err := p.symbols(); err != nil {
		return out
	}
	for i, s := range p.f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Flags&elf.SHF_EXECINSTR != 0 || s.Size > 1<<32-1 {
			continue
		}
		ds := btf.DataSec{Size: uint32(s.Size), Symbols: map[string]uint32{}}
		for _, sym := range p.bySec[i] {
			if elf.ST_TYPE(sym.Info) == elf.STT_OBJECT && sym.Value <= s.Size {
				ds.Symbols[sym.Name] = uint32(sym.Value)
			}
		}
		out[s.Name] = ds
	}
	return out
}

// kernelSpec returns the target kernel's BTF.
func (b *Module) kernelSpec() (*btf.Spec, error) {
	if b.x.btf != nil && b.x.btf.kernel != nil {
		return b.x.btf.kernel, nil
	}
	var ks *btf.Spec
	var err error
	if b.x.opts.KernelBTF != "" {
		ks, err = btf.LoadFile(b.x.opts.KernelBTF)
	} else {
		ks, err = btf.LoadKernel()
	}
	if err != nil {
		if !errors.Is(err, ErrNotSupported) && errors.Is(err, btf.ErrNotSupported) {
			err = fmt.Errorf("%w (%w)", err, ErrNotSupported)
		}
		return nil, fmt.Errorf("kernel BTF: %w (supply one with LoadOptions.KernelBTF)", err)
	}
	if b.x.btf != nil {
		b.x.btf.kernel = ks
	}
	return ks, nil
}

// prepareBTF parses the object's BTF and loads it into the kernel. A
// kernel that refuses it leaves programs without func_info/line_info, as
// libbpf does; malformed BTF needed for CO-RE is an error at relocation.
func (b *Module) prepareBTF(spec *objectSpec) {
	b.x.btf = &objBTF{fd: -1}
	if spec.BTF == nil {
		return
	}
	local, err := btf.Parse(spec.BTF)
	if err != nil {
		b.x.btf.loadEr = err
		return
	}
	b.x.btf.local = local
	if spec.BTFExt != nil {
		if b.x.btf.ext, err = btf.ParseExt(spec.BTFExt, local); err != nil {
			b.x.btf.loadEr = err
			return
		}
	}
	if b.x.opts.NoObjectBTF {
		return
	}
	raw, err := local.Marshal(btf.MarshalOptions{Sections: spec.DataSecs})
	if err != nil {
		b.x.btf.loadEr = err
		return
	}
	fd, err := btf.LoadIntoKernel(raw)
	if err != nil {
		b.x.btf.loadEr = err
		return
	}
	b.x.btf.fd = fd
}

func (o *objBTF) close() error {
	if o == nil {
		return nil
	}
	return closeFD(&o.fd)
}

func encodeInsns(insns []bpfsys.Insn) []byte {
	out := make([]byte, len(insns)*insnSize)
	for i, in := range insns {
		b := out[i*insnSize:]
		b[0], b[1] = in.Code, in.Regs
		binary.NativeEndian.PutUint16(b[2:], uint16(in.Off))
		binary.NativeEndian.PutUint32(b[4:], uint32(in.Imm))
	}
	return out
}

func decodeInsns(d []byte, insns []bpfsys.Insn) {
	for i := range insns {
		b := d[i*insnSize:]
		insns[i] = bpfsys.Insn{Code: b[0], Regs: b[1], Off: int16(binary.NativeEndian.Uint16(b[2:])), Imm: int32(binary.NativeEndian.Uint32(b[4:]))}
	}
}

func hasCORE(s *btf.ExtSection) bool { return len(s.COREs) > 0 }

// relocateCORE applies the CO-RE relocations of the program's section and
// of the .text it links, in place.
func (b *Module) relocateCORE(ps *progSpec, insns []bpfsys.Insn) ([]btf.Fixup, error) {
	ob := b.x.btf
	if ob == nil || ob.ext == nil {
		return nil, nil
	}
	var all []btf.Fixup
	parts := []struct {
		sec      string
		from, to int
	}{{ps.Section, 0, len(insns)}}
	if ps.TextBase > 0 {
		parts[0].to = ps.TextBase
		parts = append(parts, struct {
			sec      string
			from, to int
		}{".text", ps.TextBase, len(insns)})
	}
	for _, part := range parts {
		if !hasCORE(ob.ext.Section(part.sec)) {
			continue
		}
		if ob.local == nil {
			return nil, fmt.Errorf("CO-RE relocations but unusable BTF: %w", ob.loadEr)
		}
		ks, err := b.kernelSpec()
		if err != nil {
			return nil, err
		}
		raw := encodeInsns(insns[part.from:part.to])
		fx, err := btf.Relocate(raw, part.sec, ob.local, ob.ext, []*btf.Spec{ks})
		if err != nil && b.x.opts.KernelBTF == "" {
			// Types of kernel modules: search their split BTF too.
			if mods, merr := btf.LoadKernelModules(); merr == nil && len(mods) > 0 {
				raw = encodeInsns(insns[part.from:part.to])
				fx, err = btf.Relocate(raw, part.sec, ob.local, ob.ext, append([]*btf.Spec{ks}, mods...))
			}
		}
		if err != nil {
			if errors.Is(err, btf.ErrNotSupported) && !errors.Is(err, ErrNotSupported) {
				err = fmt.Errorf("%w (%w)", err, ErrNotSupported)
			}
			return nil, fmt.Errorf("CO-RE: %w", err)
		}
		all = append(all, fx...)
		decodeInsns(raw, insns[part.from:part.to])
	}
	return all, nil
}

// mapBTF gives a map creation the object's BTF key and value types:
// a DATASEC for global data, the __type(key/value) of BTF maps.
func (b *Module) mapBTF(def *mapSpec) {
	ob := b.x.btf
	if ob == nil || ob.fd < 0 || ob.local == nil {
		return
	}
	switch {
	case def.Global != nil:
		id, err := ob.local.TypeByName(def.Name, btf.KindDatasec)
		if err != nil {
			return
		}
		def.btfValue = uint32(id)
	case def.BTF && (def.btfKey != 0 || def.btfValue != 0):
	default:
		return
	}
	def.btfFD = ob.fd
}

// objBTFProg gives a program load the object's BTF with the func_info and
// line_info of its section (and of .text, rebased where it was appended).
func (b *Module) objBTFProg(spec *objectSpec, ps *progSpec, o *progLoadOpts) {
	ob := b.x.btf
	if ob == nil || ob.fd < 0 || ob.ext == nil {
		return
	}
	sec := ob.ext.Section(ps.Section)
	if len(sec.FuncInfos) == 0 {
		return
	}
	fis := append([]btf.FuncInfo(nil), sec.FuncInfos...)
	lis := append([]btf.LineInfo(nil), sec.LineInfos...)
	if ps.TextBase > 0 {
		text := ob.ext.Section(".text")
		for _, f := range text.FuncInfos {
			f.Insn += uint32(ps.TextBase)
			fis = append(fis, f)
		}
		for _, l := range text.LineInfos {
			l.Insn += uint32(ps.TextBase)
			lis = append(lis, l)
		}
	}
	if fis[0].Insn != 0 {
		return // the kernel wants the program's own function first
	}
	o.btfFd = ob.fd
	o.funcInfo, o.funcRecSize = btf.MarshalFuncInfos(fis, binary.NativeEndian), btf.FuncInfoSize
	o.lineInfo, o.lineRecSize = btf.MarshalLineInfos(lis, binary.NativeEndian), btf.LineInfoSize
}

// attachBTFID finds the kernel BTF id of a tracing program's target:
// btf_trace_NAME for tp_btf/NAME, the function for fentry/fexit/fmod_ret,
// bpf_lsm_NAME for lsm/NAME, bpf_iter_NAME for iter/NAME.
func (b *Module) attachBTFID(ps *progSpec) (uint32, error) {
	d := ps.Info.def
	if d == nil || ps.Info.target == "" {
		return 0, fmt.Errorf("section %q names no attach target", ps.Section)
	}
	ks, err := b.kernelSpec()
	if err != nil {
		return 0, err
	}
	want := d.btfPfx + ps.Info.target
	id, err := ks.TypeByName(want, btf.Kind(d.btfKnd))
	if err != nil {
		return 0, fmt.Errorf("attach target %q: no %s in the kernel's BTF: %w", ps.Info.target, want, ErrNotFound)
	}
	return uint32(id), nil
}
