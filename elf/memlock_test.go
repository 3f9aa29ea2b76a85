package elf

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// memlockChild runs in a child process (the test binary re-executed): it
// lowers RLIMIT_MEMLOCK's soft limit to 64 KiB, optionally makes map creation fail with
// EPERM (GOBPF_ELF_EPERM: "once" as a kernel before 5.11 would under that
// limit, "always" for a kernel that refuses anyway), loads the object
// GOBPF_ELF_OBJ and uses its map "m". It prints what happened; exit status
// 0 when the map works, 1 when Load failed, 2 on test errors.
func memlockChild() int {
	// Only the soft limit: without CAP_SYS_RESOURCE (as in containers)
	// the hard limit could not be raised back, by Load or anyone.
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &orig); err != nil || orig.Max <= 64<<10 {
		fmt.Println("getrlimit:", orig, err)
		return 2
	}
	low := unix.Rlimit{Cur: 64 << 10, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &low); err != nil {
		fmt.Println("setrlimit:", err)
		return 2
	}
	calls := 0
	mode := os.Getenv("GOBPF_ELF_EPERM")
	mapCreate = func(a *bpfsys.MapCreateAttr) (int, error) {
		calls++
		var lim unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim)
		if mode == "always" || (mode == "once" && lim.Cur == low.Cur) {
			return -1, &bpfsys.Error{Cmd: bpfsys.BPF_MAP_CREATE, Errno: unix.EPERM}
		}
		return bpfsys.MapCreate(a)
	}
	m := NewModule(os.Getenv("GOBPF_ELF_OBJ"))
	defer m.Close()
	var lim unix.Rlimit
	err := m.Load(nil)
	unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim)
	// Raised: to unlimited with CAP_SYS_RESOURCE, else to the hard limit.
	fmt.Printf("calls=%d raised=%v low=%v\n", calls, MemlockRaised(), lim.Cur == low.Cur)
	if lim.Cur != low.Cur && lim.Cur != unix.RLIM_INFINITY && lim.Cur != orig.Max {
		fmt.Println("limit now", lim)
		return 2
	}
	if err != nil {
		fmt.Printf("load: eperm=%v %v\n", errors.Is(err, unix.EPERM), err)
		return 1
	}
	k, v, got := uint32(1), uint64(42), uint64(0)
	if err := m.UpdateElement(m.Map("m"), unsafe.Pointer(&k), unsafe.Pointer(&v), 0); err != nil {
		fmt.Println("update:", err)
		return 2
	}
	if err := m.LookupElement(m.Map("m"), unsafe.Pointer(&k), unsafe.Pointer(&got)); err != nil || got != 42 {
		fmt.Println("lookup:", got, err)
		return 2
	}
	fmt.Println("map works")
	return 0
}

// TestMemlockRaise is issue 9 §2: when map creation fails with EPERM
// (kernels before 5.11 under a low RLIMIT_MEMLOCK), Load raises the limit
// and retries. Each case runs in a child process with the soft limit
// lowered to 64 KiB (the test process's own limit is left alone). This kernel does not charge maps to the limit, so the EPERM of
// an older kernel is injected ("once": while the limit is low).
func TestMemlockRaise(t *testing.T) {
	var before unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &before); err != nil {
		t.Fatal(err)
	}
	obj := compileSnippet(t, raceMapSrc)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		eperm, want string
		code        int
	}{
		{"", "calls=1 raised=false low=true\nmap works", 0},
		{"once", "calls=2 raised=true low=false\nmap works", 0},
		{"always", "calls=2 raised=true low=false\nload: eperm=true", 1},
	} {
		t.Run("eperm="+tc.eperm, func(t *testing.T) {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "GOBPF_ELF_CHILD=memlock", "GOBPF_ELF_OBJ="+obj, "GOBPF_ELF_EPERM="+tc.eperm)
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			t.Logf("child: %s", out)
			if code != tc.code || !strings.HasPrefix(string(out), tc.want) {
				t.Errorf("child exited %d with %q, want %d and %q", code, out, tc.code, tc.want)
			}
			if tc.eperm == "always" && !strings.Contains(string(out), "even after raising RLIMIT_MEMLOCK") {
				t.Errorf("the error does not say the limit was raised: %s", out)
			}
		})
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		t.Fatal(err)
	}
	if lim != before {
		t.Errorf("the test process's RLIMIT_MEMLOCK changed from %+v to %+v", before, lim)
	}
}
