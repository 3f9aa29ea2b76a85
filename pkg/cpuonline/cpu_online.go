// Package cpuonline reports which CPUs are online, from
// /sys/devices/system/cpu/online.
package cpuonline

import (
	"fmt"
	"os"

	"github.com/iovisor/gobpf/pkg/cpurange"
)

const cpuOnline = "/sys/devices/system/cpu/online"

// Get returns the online CPUs in ascending order, for example [0 2 3]. The
// set can change at run time (CPU hotplug), so every call reads the file.
func Get() ([]uint, error) {
	return get(cpuOnline)
}

func get(path string) ([]uint, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cpuonline: %w", err)
	}
	cpus, err := cpurange.ReadCPURange(string(buf))
	if err != nil {
		return nil, fmt.Errorf("cpuonline: %s: %w", path, err)
	}
	return cpus, nil
}
