package elf

import (
	"debug/elf"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Bounds on what an object file can make the parser allocate. eBPF objects
// are small; a hostile one must not make the loader allocate much more
// than its own size:
//
//   - compressed sections (SHF_COMPRESSED, zlib or zstd) would be inflated
//     to whatever size their header claims: they are refused, except for
//     debug sections (.debug_*), which the loader never reads;
//   - sections whose file data overlap would each be read (and decoded)
//     separately, so that one range of the file costs once per header:
//     overlapping sections are refused (a compiler never emits them), so
//     the sections read add up to at most the file's size;
//   - every program gets its own copy of the .text it calls: the
//     instructions of all programs together, after linking, are capped at
//     maxLinkedInsns.
const maxLinkedInsns = 1 << 21 // 16 MiB of instructions

// debugSection reports whether the loader never reads section s.
func debugSection(s *elf.Section) bool {
	return strings.HasPrefix(s.Name, ".debug") || strings.HasPrefix(s.Name, ".zdebug")
}

// checkLayout refuses compressed sections the loader may read and
// overlapping section data, before anything is read.
func checkLayout(f *elf.File, r io.ReaderAt) error {
	type span struct {
		s        *elf.Section
		off, end uint64
	}
	var spans []span
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_COMPRESSED != 0 && !debugSection(s) {
			return fmt.Errorf("elf: section %q is compressed (SHF_COMPRESSED, %v, claiming %d bytes once inflated from %d): compressed sections are %w",
				s.Name, compressionName(f, r, s), s.Size, s.FileSize, ErrNotSupported)
		}
		if s.Type == elf.SHT_NULL || s.Type == elf.SHT_NOBITS || s.FileSize == 0 {
			continue
		}
		end := s.Offset + s.FileSize
		if end < s.Offset {
			return fmt.Errorf("elf: section %q: offset %#x + size %#x overflows", s.Name, s.Offset, s.FileSize)
		}
		spans = append(spans, span{s, s.Offset, end})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].off < spans[j].off })
	for i := 1; i < len(spans); i++ {
		if a, b := spans[i-1], spans[i]; b.off < a.end {
			return fmt.Errorf("elf: malformed object: section %q (file bytes %#x..%#x) overlaps section %q (%#x..%#x)",
				b.s.Name, b.off, b.end, a.s.Name, a.off, a.end)
		}
	}
	return nil
}

// compressionName names a compressed section's algorithm from the first
// word of its compression header (debug/elf keeps it private).
func compressionName(f *elf.File, r io.ReaderAt, s *elf.Section) string {
	var b [4]byte
	if _, err := r.ReadAt(b[:], int64(s.Offset)); err != nil || s.Offset > 1<<62 {
		return "unknown compression"
	}
	return elf.CompressionType(f.ByteOrder.Uint32(b[:])).String()
}
