package elf

import (
	"debug/elf"
	"fmt"
	"strings"
)

// What the loader does with each section of an object. It refuses what it
// does not understand rather than skipping it: a program section of an
// unknown kind (libbpf's tp/, fentry/, lsm/, ...) would otherwise load as
// nothing, and a data section the programs expect would be missing.
//
//   - SHF_EXECINSTR sections are programs: .text (subprograms) and the
//     kinds lookupSection knows (gobpf's and libbpf's section names); any
//     other non-empty one is refused.
//   - The legacy "maps" section (several struct bpf_map_def in one section)
//     is refused: maps are "maps/NAME" sections or BTF ".maps".
//   - Sections that are not loaded (no SHF_ALLOC: symbols, strings,
//     relocations, .BTF, .BTF.ext, debug info, .llvm_addrsig) are read
//     only as needed, or skipped.
//   - Loaded (SHF_ALLOC) data sections must be known: license, version,
//     maps/NAME, .maps, and global data (.data*, .rodata*, .bss*).

// knownDataSection reports whether an SHF_ALLOC section that holds no
// program is one the loader understands.
func knownDataSection(name string) bool {
	switch {
	case name == "license", name == "version", name == ".maps", strings.HasPrefix(name, "maps/"):
		return true
	}
	return globalDataSection(name)
}

// globalDataSection reports whether name is a global data section.
func globalDataSection(name string) bool {
	for _, p := range []string{".data", ".rodata", ".bss"} {
		if name == p || strings.HasPrefix(name, p+".") {
			return true
		}
	}
	return false
}

// checkSections refuses the sections the loader does not understand.
func (p *parser) checkSections() error {
	for _, s := range p.f.Sections {
		if err := checkSection(s); err != nil {
			return err
		}
	}
	return nil
}

func checkSection(s *elf.Section) error {
	switch {
	case s.Flags&elf.SHF_EXECINSTR != 0:
		if s.Name == ".text" || s.Size == 0 {
			return nil
		}
		if _, _, _, ok := lookupSection(s.Name); ok && s.Type == elf.SHT_PROGBITS {
			return nil
		}
		return fmt.Errorf("elf: unknown program section %q (not a libbpf or gobpf section name): %w",
			s.Name, ErrNotSupported)
	case s.Name == "maps":
		return fmt.Errorf("elf: section \"maps\": legacy map definitions (several struct bpf_map_def in one \"maps\" section) are %w; define one \"maps/NAME\" section per map, or BTF maps in \".maps\"",
			ErrNotSupported)
	case s.Flags&elf.SHF_ALLOC == 0:
		return nil
	case knownDataSection(s.Name):
		return nil
	}
	return fmt.Errorf("elf: section %q (%v, flags %v) is loaded with the programs but this loader does not know it: %w",
		s.Name, s.Type, s.Flags, ErrNotSupported)
}
