package elf

import (
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// allocDuring returns the bytes allocated by f (runtime.MemStats
// TotalAlloc delta) and how long it took.
func allocDuring(f func()) (uint64, time.Duration) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	f()
	d := time.Since(t0)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, d
}

func parseBytes(b []byte) error {
	_, err := NewModuleFromReader(bytes.NewReader(b)).parse()
	return err
}

// TestZstdBomb is issue 8 fault 3: sections whose compression header
// claims 1 GiB must not be inflated. The eight sections share one 32 KiB
// zstd frame (34 KB file), as in the report.
func TestZstdBomb(t *testing.T) {
	const claim = 1 << 30
	bomb := zstdBomb(claim)
	for _, tc := range []struct {
		name   string
		shared bool
		n      int
	}{{"one section", false, 1}, {"eight sections sharing one frame", true, 8}} {
		t.Run(tc.name, func(t *testing.T) {
			var b elfBuilder
			b.section("license", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_WRITE, b.blob([]byte("GPL\x00")), 4)
			off := b.blob(bomb)
			for i := 0; i < tc.n; i++ {
				if !tc.shared && i > 0 {
					off = b.blob(bomb)
				}
				b.section("socket/bomb"+string(rune('0'+i)), elf.SHT_PROGBITS, elf.SHF_EXECINSTR|elf.SHF_COMPRESSED, off, uint64(len(bomb)))
			}
			obj := b.bytes()
			t.Logf("object: %d bytes, %d sections claiming %d bytes each", len(obj), tc.n, claim)
			// (debug/elf refuses SHF_COMPRESSED on SHF_ALLOC sections.) The
			// file really is a bomb: debug/elf inflates the section
			// (checked on a few MiB only).
			f, err := elf.NewFile(bytes.NewReader(obj))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := io.CopyN(io.Discard, f.Section("socket/bomb0").Open(), 4<<20); n != 4<<20 || err != nil {
				t.Fatalf("the bomb does not inflate: %d, %v", n, err)
			}
			var perr error
			alloc, took := allocDuring(func() { perr = parseBytes(obj) })
			t.Logf("parse: %v in %v, %d bytes allocated", perr, took, alloc)
			if perr == nil || !strings.Contains(perr.Error(), `"socket/bomb0"`) || !strings.Contains(perr.Error(), "compressed") {
				t.Errorf("error %v, want one naming the compressed section", perr)
			}
			if !errors.Is(perr, ErrNotSupported) {
				t.Errorf("error %v does not wrap ErrNotSupported", perr)
			}
			if alloc > 16<<20 || took > 2*time.Second {
				t.Errorf("parsing allocated %d bytes in %v", alloc, took)
			}
			// Load fails the same way.
			m := NewModuleFromReader(bytes.NewReader(obj))
			if err := m.Load(nil); err == nil || !strings.Contains(err.Error(), "compressed") {
				t.Errorf("Load: %v", err)
			}
			m.Close()
		})
	}
}

// TestOverlappingSections is issue 8 fault 3: 4,000 program sections over
// one 256 KiB range of a 518 KB file must not be read 4,000 times.
func TestOverlappingSections(t *testing.T) {
	const n, size = 4000, 256 << 10
	var b elfBuilder
	b.section("license", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_WRITE, b.blob([]byte("GPL\x00")), 4)
	// 256 KiB of "r0 = 0; exit" pairs.
	insns := bytes.Repeat([]byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}, size/16)
	off := b.blob(insns)
	for i := 0; i < n; i++ {
		b.section("socket/s", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_EXECINSTR, off, size)
	}
	obj := b.bytes()
	var perr error
	alloc, took := allocDuring(func() { perr = parseBytes(obj) })
	t.Logf("object: %d bytes; parse: %v in %v, %d bytes allocated", len(obj), perr, took, alloc)
	if perr == nil || !strings.Contains(perr.Error(), `"socket/s"`) || !strings.Contains(perr.Error(), "overlaps") {
		t.Errorf("error %v, want one naming the overlapping section", perr)
	}
	if alloc > 32<<20 || took > 2*time.Second {
		t.Errorf("parsing allocated %d bytes in %v", alloc, took)
	}

	// The same sections laid out one after the other are fine to read
	// (bounded by the file), and the instruction cap holds.
	var c elfBuilder
	c.section("license", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_WRITE, c.blob([]byte("GPL\x00")), 4)
	for i := 0; i < 4; i++ {
		c.section("socket/s"+string(rune('0'+i)), elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_EXECINSTR, c.blob(insns), size)
	}
	spec, err := NewModuleFromReader(bytes.NewReader(c.bytes())).parse()
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Progs) != 4 || len(spec.Progs[0].Insns) != size/8 {
		t.Errorf("%d programs", len(spec.Progs))
	}
}
