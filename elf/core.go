package elf

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
)

// LoadOptions are Load's parameters beside the per-section ones.
type LoadOptions struct {
	// Params are Load's per-section parameters.
	Params map[string]SectionParams
	// KernelBTF is a BTF file describing the running kernel, for kernels
	// without /sys/kernel/btf/vmlinux (e.g. one from BTFHub or
	// `bpftool btf dump`... in raw format). "" uses the kernel's own.
	KernelBTF string
}

// LoadWithOptions is Load with LoadOptions.
func (b *Module) LoadWithOptions(opts LoadOptions) error {
	b.mu.Lock()
	b.x.opts = opts
	b.mu.Unlock()
	return b.Load(opts.Params)
}

const vmlinuxBTF = "/sys/kernel/btf/vmlinux"

// kernelBTF is the parsed BTF of a kernel, by file, parsed once.
var kernelBTFs sync.Map // path -> *kernelBTFEntry

type kernelBTFEntry struct {
	once sync.Once
	spec *btfSpec
	err  error
}

func loadKernelBTF(path string) (*btfSpec, error) {
	if path == "" {
		path = vmlinuxBTF
	}
	e, _ := kernelBTFs.LoadOrStore(path, &kernelBTFEntry{})
	ent := e.(*kernelBTFEntry)
	ent.once.Do(func() {
		d, err := os.ReadFile(path)
		if err != nil {
			ent.err = fmt.Errorf("kernel BTF: %w (%w: supply a BTF file with LoadOptions.KernelBTF)", err, ErrNotSupported)
			return
		}
		ent.spec, ent.err = readBTF(d, binary.NativeEndian)
		if ent.err != nil {
			ent.err = fmt.Errorf("kernel BTF %s: %w", path, ent.err)
		}
	})
	return ent.spec, ent.err
}

// attachBTFID finds the kernel BTF id of a tracing program's target:
// btf_trace_NAME for tp_btf/NAME, the function for fentry/fexit/fmod_ret,
// bpf_lsm_NAME for lsm/NAME, bpf_iter_NAME for iter/NAME.
func (b *Module) attachBTFID(ps *progSpec) (uint32, error) {
	d := ps.Info.def
	if d == nil || ps.Info.target == "" {
		return 0, fmt.Errorf("section %q names no attach target", ps.Section)
	}
	kb, err := loadKernelBTF(b.x.opts.KernelBTF)
	if err != nil {
		return 0, err
	}
	want := d.btfPfx + ps.Info.target
	for id := range kb.types {
		t := &kb.types[id]
		if t.kind == d.btfKnd && t.name == want {
			return uint32(id), nil
		}
	}
	return 0, fmt.Errorf("attach target %q: no %s in the kernel's BTF: %w", ps.Info.target, want, ErrNotFound)
}

// objBTFProg attaches the object's BTF, func_info and line_info to a
// program load when the object carries them (filled in by the BTF
// loading step; a no-op until then).
func (b *Module) objBTFProg(spec *objectSpec, ps *progSpec, o *progLoadOpts) {}
