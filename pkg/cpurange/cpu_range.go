// Package cpurange parses the CPU list format the kernel uses in
// /sys/devices/system/cpu/{online,possible,present} and similar files:
// comma-separated decimal CPU numbers and inclusive ranges, for example
// "0-3,5,7-8\n".
package cpurange

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxCPUs bounds the CPU numbers ReadCPURange accepts: every number must be
// below it. The largest NR_CPUS any Linux architecture allows is 8192; the
// bound is generous and exists so that a malformed list such as
// "0-4294967295" gives an error instead of a huge allocation.
const MaxCPUs = 1 << 16

// ReadCPURange parses a CPU list such as "0-3,5,7-8" and returns the CPU
// numbers it names, in the order given ([0 1 2 3 5 7 8] here). Surrounding
// whitespace (the trailing newline of a sysfs file) is ignored.
//
// It returns an error for an empty list, an empty element ("1,,2"), a
// number that is not decimal or not below MaxCPUs, a range whose end is
// below its start ("3-1"), and a CPU listed twice.
func ReadCPURange(cpuRangeStr string) ([]uint, error) {
	s := strings.TrimSpace(cpuRangeStr)
	if s == "" {
		return nil, fmt.Errorf("cpurange: empty CPU list")
	}
	var (
		cpus []uint
		seen [MaxCPUs / 64]uint64
	)
	for _, elem := range strings.Split(s, ",") {
		lo, hi, err := parseElem(elem)
		if err != nil {
			return nil, fmt.Errorf("cpurange: %q: %w", cpuRangeStr, err)
		}
		for n := lo; n <= hi; n++ {
			if seen[n/64]&(1<<(n%64)) != 0 {
				return nil, fmt.Errorf("cpurange: %q: CPU %d listed twice", cpuRangeStr, n)
			}
			seen[n/64] |= 1 << (n % 64)
			cpus = append(cpus, n)
		}
	}
	return cpus, nil
}

// parseElem parses "N" or "N-M".
func parseElem(elem string) (lo, hi uint, err error) {
	first, last, isRange := strings.Cut(elem, "-")
	if lo, err = parseCPU(first); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parseCPU(last); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("range %q ends before it starts", elem)
	}
	return lo, hi, nil
}

func parseCPU(s string) (uint, error) {
	if s == "" {
		return 0, fmt.Errorf("missing CPU number")
	}
	// ParseUint accepts only decimal digits in base 10 (no sign, no spaces).
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("bad CPU number %q", s)
	}
	if n >= MaxCPUs {
		return 0, fmt.Errorf("CPU number %d is not below %d", n, MaxCPUs)
	}
	return uint(n), nil
}
