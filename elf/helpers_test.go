package elf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The test object is compiled once per test binary into objDir.
var (
	objOnce sync.Once
	objPath string
	objErr  error
	objDir  string
)

func TestMain(m *testing.M) {
	switch os.Getenv("GOBPF_ELF_CHILD") {
	case "udp":
		os.Exit(udpChild())
	case "memlock":
		os.Exit(memlockChild())
	}
	code := m.Run()
	if objDir != "" {
		os.RemoveAll(objDir)
	}
	if vmlinuxDir != "" {
		os.RemoveAll(vmlinuxDir)
	}
	os.Exit(code)
}

// clangIncludes finds the multiarch include directory holding asm/types.h,
// which <linux/bpf.h> needs and clang -target bpf does not search.
func clangIncludes() []string {
	var out []string
	dirs, _ := filepath.Glob("/usr/include/*-linux-gnu*")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "asm", "types.h")); err == nil {
			out = append(out, "-I"+d)
		}
	}
	return out
}

// compileBPF compiles an eBPF C file with clang into out.
func compileBPF(src, out string) error { return compileBPFFlags(src, out, "-g") }

// compileBPFFlags is compileBPF with other debug flags (-g0, ...).
func compileBPFFlags(src, out string, debug string) error {
	args := append([]string{"-O2", debug, "-target", "bpf", "-Wno-unused-value"}, clangIncludes()...)
	args = append(args, "-c", src, "-o", out)
	b, err := exec.Command("clang", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("clang %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// testObject returns the path of tests/elf/elf_test.c compiled.
func testObject(t testing.TB) string {
	t.Helper()
	objOnce.Do(func() {
		objDir, objErr = os.MkdirTemp("", "gobpf-elf-test-")
		if objErr != nil {
			return
		}
		objPath = filepath.Join(objDir, "elf_test.o")
		objErr = compileBPF("../tests/elf/elf_test.c", objPath)
	})
	if objErr != nil {
		t.Fatal(objErr)
	}
	return objPath
}

// compileSnippet compiles C source text into an object in t.TempDir().
func compileSnippet(t testing.TB, src string) string {
	t.Helper()
	return compileSnippetFlags(t, src, "-g")
}

// compileSnippetFlags is compileSnippet with other debug flags.
func compileSnippetFlags(t testing.TB, src, debug string) string {
	t.Helper()
	dir := t.TempDir()
	c := filepath.Join(dir, "snippet.c")
	o := filepath.Join(dir, "snippet.o")
	if err := os.WriteFile(c, []byte(snippetHeader+src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := compileBPFFlags(c, o, debug); err != nil {
		t.Fatal(err)
	}
	return o
}

const snippetHeader = `#include <linux/bpf.h>
#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
char _license[] SEC("license") = "GPL";
`

// udpChild runs in a cgroup the test made: it sends GOBPF_ELF_PASS_N
// datagrams to 127.0.0.1:GOBPF_ELF_PASS_PORT and GOBPF_ELF_DROP_N to
// GOBPF_ELF_DROP_PORT, then tries to create an AF_INET6 datagram socket.
// Exit status: 0 when that socket was denied with EPERM, 3 when it was
// created, 4 on other errors.
func udpChild() int {
	atoi := func(k string) int { n, _ := strconv.Atoi(os.Getenv(k)); return n }
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "socket:", err)
		return 4
	}
	send := func(port, n int) {
		to := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
		for i := 0; i < n; i++ {
			unix.Sendto(s, []byte(fmt.Sprintf("msg %d", i)), 0, to) // drops fail with EPERM
		}
	}
	send(atoi("GOBPF_ELF_PASS_PORT"), atoi("GOBPF_ELF_PASS_N"))
	send(atoi("GOBPF_ELF_DROP_PORT"), atoi("GOBPF_ELF_DROP_N"))
	unix.Close(s)
	s6, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		unix.Close(s6)
		return 3
	}
	if err != unix.EPERM {
		fmt.Fprintln(os.Stderr, "socket6:", err)
		return 4
	}
	return 0
}
