package elf

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
)

const defaultSymFile = "/proc/kallsyms"

// GetSyscallFnName returns the kernel symbol of syscall name, for example
// "__x64_sys_open" for "open" on x86-64 kernels >= 4.17, or "SyS_open".
func GetSyscallFnName(name string) (string, error) {
	return getSyscallFnNameWithFile(name, defaultSymFile)
}

func getSyscallFnNameWithFile(name, symFile string) (string, error) {
	prefix := "__x64_"
	switch runtime.GOARCH {
	case "386":
		prefix = "__ia32_"
	case "arm64":
		prefix = "__arm64_"
	case "s390x":
		prefix = "__s390x_"
	}
	syms, err := os.ReadFile(symFile)
	if err != nil {
		return "", err
	}
	q := regexp.QuoteMeta(name)
	if m := regexp.MustCompile(`\b` + regexp.QuoteMeta(prefix) + `[Ss]y[sS]_` + q + `\b`).Find(syms); m != nil {
		return string(m), nil
	}
	if m := regexp.MustCompile(`\b[Ss]y[sS]_` + q + `\b`).Find(syms); m != nil {
		return string(m), nil
	}
	return "", fmt.Errorf("no kernel symbol for syscall %q in %s", name, symFile)
}
