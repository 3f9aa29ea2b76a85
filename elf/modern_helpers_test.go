package elf

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Objects built with libbpf's headers against a vmlinux.h generated from
// the running kernel's BTF (bpftool btf dump file ... format c).
var (
	vmlinuxOnce sync.Once
	vmlinuxDir  string
	vmlinuxErr  error

	modernOnce sync.Once
	modernObj  string
	modernErr  error
)

// vmlinuxHeaderDir returns a folder holding vmlinux.h for the running
// kernel, made once per test binary.
func vmlinuxHeaderDir(t testing.TB) string {
	t.Helper()
	vmlinuxOnce.Do(func() {
		if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
			vmlinuxErr = err
			return
		}
		vmlinuxDir, vmlinuxErr = os.MkdirTemp("", "gobpf-vmlinux-")
		if vmlinuxErr != nil {
			return
		}
		src := os.Getenv("GOBPF_VMLINUX_BTF") // a BTF file instead of the running kernel's
		if src == "" {
			src = "/sys/kernel/btf/vmlinux"
		}
		out, err := exec.Command("bpftool", "btf", "dump", "file", src, "format", "c").Output()
		if err != nil {
			vmlinuxErr = err
			return
		}
		vmlinuxErr = os.WriteFile(filepath.Join(vmlinuxDir, "vmlinux.h"), out, 0o644)
	})
	if vmlinuxErr != nil {
		t.Fatalf("vmlinux.h: %v (needs bpftool and libbpf-dev: make setup)", vmlinuxErr)
	}
	return vmlinuxDir
}

// compileModern compiles a C file of tests/elf against vmlinux.h.
func compileModern(t testing.TB, src, out string, extra ...string) error {
	t.Helper()
	dir := vmlinuxHeaderDir(t)
	args := append([]string{"-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I", dir}, extra...)
	args = append(args, "-c", src, "-o", out)
	b, err := exec.Command("clang", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("clang %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// modernObject returns tests/elf/modern.c compiled (once).
func modernObject(t testing.TB) string {
	t.Helper()
	modernOnce.Do(func() {
		dir := vmlinuxHeaderDir(t)
		modernObj = filepath.Join(dir, "modern.o")
		modernErr = compileModern(t, "../tests/elf/modern.c", modernObj, "-DBPF_NO_PRESERVE_ACCESS_INDEX")
	})
	if modernErr != nil {
		t.Fatal(modernErr)
	}
	return modernObj
}

// compileModernSnippet compiles C text (after vmlinux.h and libbpf's
// headers) into t.TempDir().
func compileModernSnippet(t testing.TB, src string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	c := filepath.Join(dir, "s.c")
	o := filepath.Join(dir, "s.o")
	hdr := "#include \"vmlinux.h\"\n#include <bpf/bpf_helpers.h>\n#include <bpf/bpf_tracing.h>\n#include <bpf/bpf_core_read.h>\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n"
	if err := os.WriteFile(c, []byte(hdr+src), 0o644); err != nil {
		t.Fatal(err)
	}
	compileModern(t, c, o, extra...)
	return o
}
