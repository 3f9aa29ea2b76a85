package btf

import (
	"testing"
)

// BenchmarkReadVmlinux is the reference for the parse benchmarks: only
// reading /sys/kernel/btf/vmlinux into memory.
func BenchmarkReadVmlinux(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		raw, err := readFile("/sys/kernel/btf/vmlinux")
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(raw)))
	}
}

// BenchmarkParseVmlinux reads and parses the kernel's BTF, as LoadKernel
// does once per process.
func BenchmarkParseVmlinux(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		raw, err := readFile("/sys/kernel/btf/vmlinux")
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(raw)))
		if _, err := parse(raw, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseVmlinuxInMemory is the parse alone, on bytes already read
// (parse never modifies them).
func BenchmarkParseVmlinuxInMemory(b *testing.B) {
	raw, err := readFile("/sys/kernel/btf/vmlinux")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := parse(raw, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseVmlinuxNameIndex adds building the name index (done on
// the first lookup by name, e.g. the first CO-RE relocation).
func BenchmarkParseVmlinuxNameIndex(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		raw, err := readFile("/sys/kernel/btf/vmlinux")
		if err != nil {
			b.Fatal(err)
		}
		s, err := parse(raw, nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(s.TypesByName("task_struct")) == 0 {
			b.Fatal("no task_struct")
		}
	}
}

// BenchmarkRelocateObject relocates every program section of the test
// object (46 relocations in 11 sections) against the kernel's BTF (parsed
// and indexed before the timer, as LoadKernel caches it).
func BenchmarkRelocateObject(b *testing.B) {
	o := buildObj(b, "core.c")
	k, err := LoadKernel()
	if err != nil {
		b.Fatal(err)
	}
	k.TypesByName("")
	secs := map[string][]byte{}
	for name, insns := range o.progs {
		if name != "raw_tp/unguarded" {
			secs[name] = append([]byte(nil), insns...)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		n = 0
		for name, orig := range o.progs {
			buf, ok := secs[name]
			if !ok {
				continue
			}
			copy(buf, orig)
			fs, err := Relocate(buf, name, o.spec, o.ext, []*Spec{k})
			if err != nil {
				b.Fatal(err)
			}
			n += len(fs)
		}
	}
	b.ReportMetric(float64(n), "relocs/op")
}

// BenchmarkParseObject parses the test object's .BTF and .BTF.ext.
func BenchmarkParseObject(b *testing.B) {
	btf, ext := seed(b, "core.btf"), seed(b, "core.btf.ext")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s, err := Parse(btf)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseExt(ext, s); err != nil {
			b.Fatal(err)
		}
	}
}
