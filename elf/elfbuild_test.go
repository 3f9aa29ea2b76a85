package elf

import (
	"debug/elf"
	"encoding/binary"
)

// elfBuilder writes small ELF64 little-endian EM_BPF relocatable objects
// for tests that need files a compiler would never produce: data blobs
// placed in the file, and section headers that point anywhere in it.
type elfBuilder struct {
	body []byte // file bytes after the ELF header
	secs []builtSection
}

type builtSection struct {
	name        string
	typ         elf.SectionType
	flags       elf.SectionFlag
	off, size   uint64
	link, info  uint32
	align, entz uint64
}

const elfHeaderSize = 64

// blob appends data to the file (8-byte aligned) and returns its offset.
func (b *elfBuilder) blob(data []byte) uint64 {
	for len(b.body)%8 != 0 {
		b.body = append(b.body, 0)
	}
	off := uint64(elfHeaderSize + len(b.body))
	b.body = append(b.body, data...)
	return off
}

// section adds a section header over file bytes [off, off+size).
func (b *elfBuilder) section(name string, typ elf.SectionType, flags elf.SectionFlag, off, size uint64) *builtSection {
	b.secs = append(b.secs, builtSection{name: name, typ: typ, flags: flags, off: off, size: size, align: 8})
	return &b.secs[len(b.secs)-1]
}

// bytes lays out the object: header, blobs, .shstrtab, section headers
// (a null section first, .shstrtab last).
func (b *elfBuilder) bytes() []byte {
	le := binary.LittleEndian
	var strtab []byte
	strtab = append(strtab, 0)
	names := make([]uint32, len(b.secs))
	for i, s := range b.secs {
		names[i] = uint32(len(strtab))
		strtab = append(append(strtab, s.name...), 0)
	}
	shstrName := uint32(len(strtab))
	strtab = append(append(strtab, ".shstrtab"...), 0)
	strOff := b.blob(strtab)
	for len(b.body)%8 != 0 {
		b.body = append(b.body, 0)
	}
	shoff := uint64(elfHeaderSize + len(b.body))
	n := len(b.secs) + 2
	out := make([]byte, elfHeaderSize, int(shoff)+64*n)
	copy(out, []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	le.PutUint16(out[16:], uint16(elf.ET_REL))
	le.PutUint16(out[18:], uint16(elf.EM_BPF))
	le.PutUint32(out[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(out[40:], shoff)
	le.PutUint16(out[52:], elfHeaderSize)
	le.PutUint16(out[58:], 64)
	le.PutUint16(out[60:], uint16(n))
	le.PutUint16(out[62:], uint16(n-1))
	out = append(out, b.body...)
	hdr := func(name uint32, s builtSection) {
		h := make([]byte, 64)
		le.PutUint32(h[0:], name)
		le.PutUint32(h[4:], uint32(s.typ))
		le.PutUint64(h[8:], uint64(s.flags))
		le.PutUint64(h[24:], s.off)
		le.PutUint64(h[32:], s.size)
		le.PutUint32(h[40:], s.link)
		le.PutUint32(h[44:], s.info)
		le.PutUint64(h[48:], s.align)
		le.PutUint64(h[56:], s.entz)
		out = append(out, h...)
	}
	hdr(0, builtSection{})
	for i, s := range b.secs {
		hdr(names[i], s)
	}
	hdr(shstrName, builtSection{typ: elf.SHT_STRTAB, off: strOff, size: uint64(len(strtab)), align: 1})
	return out
}

// zstdBomb returns an ELF compression header (Chdr64, ELFCOMPRESS_ZSTD)
// claiming size bytes, followed by a zstd frame of RLE blocks (4 bytes
// each, 128 KiB inflated) that really inflates to size bytes of 'A'.
func zstdBomb(size uint64) []byte {
	le := binary.LittleEndian
	b := make([]byte, 24)
	le.PutUint32(b[0:], uint32(elf.COMPRESS_ZSTD))
	le.PutUint64(b[8:], size)
	le.PutUint64(b[16:], 8)
	// Frame: magic, descriptor (no content size, no checksum, not single
	// segment), window descriptor 2^(10+7) = 128 KiB.
	b = append(b, 0x28, 0xb5, 0x2f, 0xfd, 0x00, 7<<3)
	const blk = 128 << 10
	for left := size; left > 0; {
		n := uint64(blk)
		if left < n {
			n = left
		}
		left -= n
		h := uint32(n)<<3 | 1<<1 // RLE block
		if left == 0 {
			h |= 1 // last block
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 'A')
	}
	return b
}
