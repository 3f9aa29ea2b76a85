// Compile-time check that the pkg/... packages keep the exported API of
// upstream github.com/iovisor/gobpf's pkg/... packages (latest master):
// every function and method (as a method expression assigned to a variable
// of upstream's type), the constants and variables, and tracepipe's
// TraceEvent fields. A signature that drifts from upstream breaks the build
// of this test. Behaviour is not checked here, and additions beyond
// upstream are not listed.
package compattest_test

import (
	"testing"

	"github.com/iovisor/gobpf/pkg/bpffs"
	"github.com/iovisor/gobpf/pkg/cpuonline"
	"github.com/iovisor/gobpf/pkg/cpupossible"
	"github.com/iovisor/gobpf/pkg/cpurange"
	"github.com/iovisor/gobpf/pkg/ksym"
	"github.com/iovisor/gobpf/pkg/progtestrun"
	"github.com/iovisor/gobpf/pkg/tracepipe"
)

var (
	// bpffs
	_ string                                = bpffs.BPFFSPath
	_ *int32                                = &bpffs.FsMagicBPFFS // a variable, as upstream
	_ func(mountpoint string) (bool, error) = bpffs.IsMountedAt
	_ func() (bool, error)                  = bpffs.IsMounted
	_ func(mountpoint string) error         = bpffs.MountAt
	_ func() error                          = bpffs.Mount

	// cpuonline, cpupossible, cpurange
	_ func() ([]uint, error)                   = cpuonline.Get
	_ func() ([]uint, error)                   = cpupossible.Get
	_ func(cpuRangeStr string) ([]uint, error) = cpurange.ReadCPURange

	// ksym
	_ string                            = ksym.KALLSYMS
	_ func(addr string) (string, error) = ksym.Ksym

	// progtestrun: (return value, duration, data out size, error)
	_ func(progFd, repeat int, data []byte, dataOut []byte) (int, int, int, error) = progtestrun.Run

	// tracepipe
	_ func() (*tracepipe.TracePipe, error)                                    = tracepipe.New
	_ func(*tracepipe.TracePipe) (*tracepipe.TraceEvent, error)               = (*tracepipe.TracePipe).ReadLine
	_ func(*tracepipe.TracePipe) (<-chan *tracepipe.TraceEvent, <-chan error) = (*tracepipe.TracePipe).Channel
	_ func(*tracepipe.TracePipe) error                                        = (*tracepipe.TracePipe).Close
	_                                                                         = func(e tracepipe.TraceEvent) []string {
		return []string{e.Raw, e.Task, e.PID, e.CPU, e.Flags, e.Timestamp, e.Function, e.Message}
	}
	_ = tracepipe.TraceEvent{Raw: s, Task: s, PID: s, CPU: s, Flags: s, Timestamp: s, Function: s, Message: s}
)

var s string

// TestUpstreamAPICompat checks the values of the string constants, which
// cannot be compared at compile time; the rest of the file is checked when
// the test binary compiles.
func TestUpstreamAPICompat(t *testing.T) {
	if bpffs.BPFFSPath != "/sys/fs/bpf" {
		t.Errorf("bpffs.BPFFSPath = %q, upstream has \"/sys/fs/bpf\"", bpffs.BPFFSPath)
	}
	if uint32(bpffs.FsMagicBPFFS) != 0xCAFE4A11 {
		t.Errorf("bpffs.FsMagicBPFFS = %#x, want 0xcafe4a11", uint32(bpffs.FsMagicBPFFS))
	}
	if ksym.KALLSYMS != "/proc/kallsyms" {
		t.Errorf("ksym.KALLSYMS = %q, upstream has \"/proc/kallsyms\"", ksym.KALLSYMS)
	}
}
