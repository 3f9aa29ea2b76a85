package bcc

import (
	"testing"

	"github.com/iovisor/gobpf/internal/testutil"
)

func TestFeatures(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	// This kernel (and any kernel the suite targets) has these.
	for name, f := range map[string]func() bool{
		"SupportsUprobes":        SupportsUprobes,
		"SupportsRingBuf":        SupportsRingBuf,
		"SupportsBatchOps":       SupportsBatchOps,
		"SupportsRawTracepoints": SupportsRawTracepoints,
	} {
		if !f() {
			t.Errorf("%s() = false", name)
		}
		if f() != f() {
			t.Errorf("%s() is not stable", name)
		}
	}
	if got, want := SupportsKprobes(), testutil.HaveKprobes(); got != want {
		t.Errorf("SupportsKprobes() = %v, but the kernel's kprobe interfaces say %v", got, want)
	}
}
