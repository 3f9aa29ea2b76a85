package bcc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

// TestModuleOptionsDebug compiles with debug flags and checks what reaches
// DebugOutput: the preprocessed source, and the verifier's log at Load.
func TestModuleOptionsDebug(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	const src = `
#define GOBPF_MARK_VALUE 4242
BPF_ARRAY(hits, u64, 1);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
	if ((bpf_get_current_pid_tgid() >> 32) != TGID)
		return 0;
	int k = 0;
	u64 *p = hits.lookup(&k);
	if (p)
		__sync_fetch_and_add(p, GOBPF_MARK_VALUE);
	return 0;
}
`
	var out bytes.Buffer
	m, err := NewModuleWithOptions(src, ModuleOptions{
		CFlags:      []string{fmt.Sprintf("-DTGID=%d", os.Getpid())},
		Debug:       DEBUG_PREPROCESSOR | DEBUG_BPF,
		DebugOutput: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pre := out.String()
	// The source as bcc's rewriter left it: the tracepoint's struct
	// declared, the table access turned into a helper call.
	for _, want := range []string{"#define GOBPF_MARK_VALUE 4242", "struct tracepoint__syscalls__sys_enter_getppid {", "bpf_map_lookup_elem((void *)bpf_pseudo_fd("} {
		if !strings.Contains(pre, want) {
			t.Errorf("DEBUG_PREPROCESSOR output lacks %q:\n%.3000s", want, pre)
		}
	}
	if strings.Contains(pre, "hits.lookup(") {
		t.Errorf("DEBUG_PREPROCESSOR output holds the source before rewriting:\n%.3000s", pre)
	}
	out.Reset()
	fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
	if err != nil {
		t.Fatal(err)
	}
	if log := out.String(); !strings.Contains(log, "verifier log of tracepoint__syscalls__sys_enter_getppid") || !strings.Contains(log, "processed") {
		t.Errorf("DEBUG_BPF: no verifier log at Load:\n%.3000s", log)
	}
	if err := m.AttachTracepoint("syscalls:sys_enter_getppid", fd); err != nil {
		t.Fatal(err)
	}
	unix.Getppid()
	unix.Getppid()
	if got := lookupU64(t, m, "hits", 0); got != 2*4242 {
		t.Errorf("hits = %d, want %d", got, 2*4242)
	}
	// Unknown flags are refused.
	if _, err := NewModuleWithOptions(src, ModuleOptions{Debug: 0x1000}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("unknown debug flag: err = %v, want EINVAL", err)
	}
}
