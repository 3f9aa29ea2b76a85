package elf

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// splitOffset splits "NAME+OFFSET" (OFFSET decimal or 0x hex).
func splitOffset(s string) (string, uint64, error) {
	name, off, ok := strings.Cut(s, "+")
	if !ok {
		return s, 0, nil
	}
	n, err := strconv.ParseUint(off, 0, 64)
	if err != nil {
		return "", 0, fmt.Errorf("elf: bad offset in %q: %w", s, err)
	}
	return name, n, nil
}

// findBinary resolves a uprobe target: a path, or a program name looked up
// in $PATH, or a library name looked up in the usual library folders.
func findBinary(name string) (string, error) {
	if strings.Contains(name, "/") {
		abs, err := filepath.Abs(name)
		if err != nil {
			return "", fmt.Errorf("elf: uprobe target %q: %w", name, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("elf: uprobe target: %w", err)
		}
		return abs, nil
	}
	if strings.Contains(name, ".so") {
		dirs, _ := filepath.Glob("/usr/lib/*-linux-gnu*")
		dirs2, _ := filepath.Glob("/lib/*-linux-gnu*")
		for _, d := range append(append(dirs, dirs2...), "/usr/lib64", "/lib64", "/usr/lib", "/lib") {
			p := filepath.Join(d, name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		return "", fmt.Errorf("elf: uprobe target library %q: %w", name, ErrNotFound)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("elf: uprobe target %q: %w (%w)", name, ErrNotFound, err)
	}
	return filepath.Abs(p)
}

// symbolOffset returns the file offset of function symbol "SYMBOL[+OFF]"
// in ELF file path, which is what uprobes take.
func symbolOffset(path, symbol string) (uint64, error) {
	name, extra, err := splitOffset(symbol)
	if err != nil {
		return 0, err
	}
	f, err := elf.Open(path)
	if err != nil {
		return 0, fmt.Errorf("elf: uprobe target %s: %w", path, err)
	}
	defer f.Close()
	var syms []elf.Symbol
	if s, err := f.Symbols(); err == nil {
		syms = s
	}
	if s, err := f.DynamicSymbols(); err == nil {
		syms = append(syms, s...)
	}
	for _, s := range syms {
		if s.Name != name || elf.ST_TYPE(s.Info) != elf.STT_FUNC && elf.ST_TYPE(s.Info) != elf.STT_GNU_IFUNC || s.Value == 0 {
			continue
		}
		for _, ph := range f.Progs {
			if ph.Type == elf.PT_LOAD && ph.Flags&elf.PF_X != 0 && s.Value >= ph.Vaddr && s.Value < ph.Vaddr+ph.Memsz {
				return s.Value - ph.Vaddr + ph.Off + extra, nil
			}
		}
		if int(s.Section) < len(f.Sections) && f.Sections[s.Section].Type != elf.SHT_NOBITS {
			sec := f.Sections[s.Section]
			return s.Value - sec.Addr + sec.Offset + extra, nil
		}
		return 0, fmt.Errorf("elf: symbol %q of %s is in no loadable segment", name, path)
	}
	return 0, fmt.Errorf("elf: symbol %q in %s: %w", name, path, errors.Join(ErrNotFound))
}
