package bcc

import (
	"sync"

	"github.com/iovisor/gobpf/pkg/ksym"
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
		syscallPrefix = syscallPrefixIn(ksym.Load())
	})
	return syscallPrefix
}

// GetSyscallFnName returns the kernel function implementing syscall name,
// e.g. "__x64_sys_chroot" for "chroot", to attach kprobes to.
func GetSyscallFnName(name string) string {
	return GetSyscallPrefix() + name
}

// syscallPrefixIn looks for the bpf syscall's function under each known
// prefix in a kernel symbol table; "sys_" when none is found or the table
// could not be read.
func syscallPrefixIn(t *ksym.Table, err error) string {
	if err != nil {
		return "sys_"
	}
	for _, p := range syscallPrefixes {
		if _, err := t.Lookup(p + "bpf"); err == nil {
			return p
		}
	}
	return "sys_"
}
