package bpf

import (
	"bufio"
	"bytes"
	"os"
	"sync"
)

var (
	syscallPrefixOnce sync.Once
	syscallPrefix     string
)

// syscallPrefixes are the prefixes kernels give their syscall entry
// functions, most specific first: x86-64, arm64 and s390x wrappers since
// Linux 4.17, then the generic name of older kernels.
var syscallPrefixes = []string{"__x64_sys_", "__arm64_sys_", "__s390x_sys_", "__riscv_sys_", "__ia32_sys_", "sys_"}

// GetSyscallPrefix returns the prefix of the running kernel's syscall
// functions ("__x64_sys_" on modern x86-64, "sys_" on old kernels), found
// once in /proc/kallsyms.
func GetSyscallPrefix() string {
	syscallPrefixOnce.Do(func() {
		syscallPrefix = findSyscallPrefix("/proc/kallsyms")
	})
	return syscallPrefix
}

// GetSyscallFnName returns the kernel function implementing syscall name,
// e.g. "__x64_sys_chroot" for "chroot", to attach kprobes to.
func GetSyscallFnName(name string) string {
	return GetSyscallPrefix() + name
}

// findSyscallPrefix looks for the bpf syscall's function under each known
// prefix in a kallsyms file; "sys_" when none is found.
func findSyscallPrefix(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "sys_"
	}
	defer f.Close()
	found := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// "ffffffff81234560 T __x64_sys_bpf" (optionally "\t[module]")
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 3 || !bytes.HasSuffix(fields[2], []byte("sys_bpf")) {
			continue
		}
		found[string(fields[2])] = true
	}
	for _, p := range syscallPrefixes {
		if found[p+"bpf"] {
			return p
		}
	}
	return "sys_"
}
