package btf

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

const (
	sysBTF      = "/sys/kernel/btf"
	maxBTFBytes = 1 << 30 // refuse to read more than this from a file
)

var kernel struct {
	once sync.Once
	spec *Spec
	err  error
}

// LoadKernel returns the running kernel's BTF (/sys/kernel/btf/vmlinux),
// parsed once per process. A kernel without it gives ErrNotSupported:
// use LoadFile with a BTF file for that kernel instead.
func LoadKernel() (*Spec, error) {
	kernel.once.Do(func() {
		raw, err := readFile(filepath.Join(sysBTF, "vmlinux"))
		if errors.Is(err, fs.ErrNotExist) {
			kernel.err = fmt.Errorf("%w: kernel has no %s/vmlinux (CONFIG_DEBUG_INFO_BTF); supply a BTF file", ErrNotSupported, sysBTF)
			return
		}
		if err != nil {
			kernel.err = fmt.Errorf("btf: %w", err)
			return
		}
		kernel.spec, kernel.err = parse(raw, nil)
		if kernel.err != nil {
			kernel.err = fmt.Errorf("btf: %s/vmlinux: %w", sysBTF, kernel.err)
		}
	})
	return kernel.spec, kernel.err
}

// LoadKernelModule returns the split BTF of a loaded kernel module
// (/sys/kernel/btf/<name>) on top of LoadKernel's.
func LoadKernelModule(name string) (*Spec, error) {
	if name == "" || name == "vmlinux" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("btf: invalid module name %q", name)
	}
	base, err := LoadKernel()
	if err != nil {
		return nil, err
	}
	raw, err := readFile(filepath.Join(sysBTF, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: BTF of kernel module %q (not loaded, or built without BTF)", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("btf: %w", err)
	}
	s, err := parse(raw, base)
	if err != nil {
		return nil, fmt.Errorf("btf: module %s: %w", name, err)
	}
	return s, nil
}

// LoadFile parses BTF from a file: raw BTF (as in /sys/kernel/btf/vmlinux
// or made by `bpftool btf dump ... format raw`/pahole), or an ELF file
// (a vmlinux image, a BPF object) whose .BTF section is used.
func LoadFile(path string) (*Spec, error) {
	raw, err := readFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: BTF file %s", ErrNotFound, path)
		}
		return nil, fmt.Errorf("btf: %w", err)
	}
	if bytes.HasPrefix(raw, []byte(elf.ELFMAG)) {
		raw, err = elfSection(raw, ".BTF")
		if err != nil {
			return nil, fmt.Errorf("btf: %s: %w", path, err)
		}
	}
	s, err := parse(raw, nil)
	if err != nil {
		return nil, fmt.Errorf("btf: %s: %w", path, err)
	}
	return s, nil
}

// elfSection returns a copy of the named section of an ELF image.
func elfSection(img []byte, name string) ([]byte, error) {
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	sec := f.Section(name)
	if sec == nil || sec.Type == elf.SHT_NOBITS {
		return nil, fmt.Errorf("%w: ELF section %s", ErrNotFound, name)
	}
	if sec.Size > uint64(len(img)) {
		return nil, invalidf("ELF section %s larger than the file", name)
	}
	return sec.Data()
}

// readFile reads a whole file, bounded by maxBTFBytes, into one buffer
// sized from stat (sysfs reports BTF files' true size); files that grow
// or report no size are read on until EOF.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := int64(0)
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		size = st.Size()
	}
	if size > maxBTFBytes {
		return nil, fmt.Errorf("%s: %d bytes is more than the %d accepted", path, size, maxBTFBytes)
	}
	buf := make([]byte, 0, size+1)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > maxBTFBytes {
				return nil, fmt.Errorf("%s: more than the %d bytes accepted", path, maxBTFBytes)
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// LoadKernelModules returns the split BTF of every loaded kernel module
// that has some (each /sys/kernel/btf/<module>), for Relocate's targets
// after LoadKernel's. It reads them anew on each call: modules come and go.
func LoadKernelModules() ([]*Spec, error) {
	ents, err := os.ReadDir(sysBTF)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("btf: %w", err)
	}
	var out []*Spec
	for _, e := range ents {
		if e.Name() == "vmlinux" {
			continue
		}
		s, err := LoadKernelModule(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // unloaded meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
