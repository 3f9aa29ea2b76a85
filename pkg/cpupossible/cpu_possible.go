// Package cpupossible reports which CPUs the kernel could ever bring online,
// from /sys/devices/system/cpu/possible. Per-CPU BPF maps hold one value per
// possible CPU.
package cpupossible

import (
	"fmt"
	"os"
	"sync"

	"github.com/iovisor/gobpf/pkg/cpurange"
)

const cpuPossible = "/sys/devices/system/cpu/possible"

var cache struct {
	sync.Mutex
	cpus []uint
}

// Get returns the possible CPUs in ascending order, for example [0 1 2 3].
// The set is fixed at boot, so it is read once and cached (a failed read is
// not cached); each call returns a fresh copy the caller may modify.
func Get() ([]uint, error) {
	cache.Lock()
	defer cache.Unlock()
	if cache.cpus == nil {
		cpus, err := get(cpuPossible)
		if err != nil {
			return nil, err
		}
		cache.cpus = cpus
	}
	return append([]uint(nil), cache.cpus...), nil
}

func get(path string) ([]uint, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cpupossible: %w", err)
	}
	cpus, err := cpurange.ReadCPURange(string(buf))
	if err != nil {
		return nil, fmt.Errorf("cpupossible: %s: %w", path, err)
	}
	return cpus, nil
}
