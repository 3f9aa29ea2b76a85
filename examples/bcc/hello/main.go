// Command hello is the README's usage example: it counts its own getppid
// calls with a tracepoint program and reads the count from a typed table.
package main

import (
	"fmt"
	"syscall"

	bpf "github.com/iovisor/gobpf/bcc"
)

const src = `
BPF_HASH(calls, u32, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	calls.increment(pid);
	return 0;
}`

func main() {
	m, err := bpf.NewModuleWithError(src, nil) // the error holds clang's diagnostics
	if err != nil {
		panic(err)
	}
	defer m.Close() // detaches and closes everything the module opened
	fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
	if err != nil {
		panic(err) // a verifier rejection carries the verifier log
	}
	if err := m.AttachTracepoint("syscalls:sys_enter_getppid", fd); err != nil {
		panic(err)
	}
	for i := 0; i < 3; i++ {
		syscall.Getppid()
	}
	calls, _ := bpf.NewTypedTable[uint32, uint64](bpf.NewTable(m.TableId("calls"), m))
	n, _ := calls.Get(uint32(syscall.Getpid()))
	fmt.Println("getppid calls:", n) // 3
}
