package elf

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// Kernels before 5.11 charge the memory of BPF maps and programs to the
// process's RLIMIT_MEMLOCK (often 64 KiB), and map creation then fails
// with EPERM. As upstream gobpf does, Load then raises RLIMIT_MEMLOCK to
// unlimited (or, without CAP_SYS_RESOURCE, its soft limit to the hard
// limit) and creates the map again.
//
// This changes a process-wide limit (every thread, and children started
// afterwards, inherit it), and it is not restored (the maps,
// still charged, outlive the call). A program that does not want it can
// set the limit itself before Load (unix.Setrlimit); Load only raises it
// after an EPERM, and never lowers it. MemlockRaised reports whether it
// did. Newer kernels (5.11 and later) charge BPF memory to the cgroup
// instead and never take this path.

// mapCreate creates a map; tests replace it to inject EPERM.
var mapCreate = bpfsys.MapCreate

var memlockRaised atomic.Bool

// MemlockRaised reports whether Load raised the process's RLIMIT_MEMLOCK
// (see Load) because map creation failed with EPERM.
func MemlockRaised() bool { return memlockRaised.Load() }

// createMapRaisingMemlock is mapCreate, retried once after raising
// RLIMIT_MEMLOCK when it fails with EPERM.
func createMapRaisingMemlock(attr *bpfsys.MapCreateAttr) (int, error) {
	fd, err := mapCreate(attr)
	if err == nil || !errors.Is(err, unix.EPERM) {
		return fd, err
	}
	if rerr := raiseMemlock(); rerr != nil {
		return -1, fmt.Errorf("%w (and RLIMIT_MEMLOCK, which kernels before 5.11 charge maps to, could not be raised: %v)", err, rerr)
	}
	fd, err = mapCreate(attr)
	if err != nil {
		return -1, fmt.Errorf("%w (even after raising RLIMIT_MEMLOCK)", err)
	}
	return fd, nil
}

// raiseMemlock sets RLIMIT_MEMLOCK to unlimited, or its soft limit to the
// hard limit when the process may not raise the hard limit.
func raiseMemlock() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return err
	}
	if lim.Cur == unix.RLIM_INFINITY {
		return errors.New("it is already unlimited")
	}
	err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY})
	if err != nil && lim.Cur < lim.Max {
		err = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: lim.Max, Max: lim.Max})
	}
	if err != nil {
		return err
	}
	memlockRaised.Store(true)
	return nil
}
