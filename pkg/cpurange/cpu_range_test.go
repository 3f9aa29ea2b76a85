package cpurange

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestReadCPURange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []uint
	}{
		{"0", []uint{0}},
		{"0\n", []uint{0}},
		{"0-3\n", []uint{0, 1, 2, 3}},
		{"0-3,5,7-8\n", []uint{0, 1, 2, 3, 5, 7, 8}},
		{" 2,4 \n", []uint{2, 4}},
		{"5-5", []uint{5}},
		{"3,1", []uint{3, 1}},
		{"007", []uint{7}},
		{"65534-65535", []uint{65534, 65535}},
	} {
		got, err := ReadCPURange(tc.in)
		if err != nil {
			t.Errorf("ReadCPURange(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ReadCPURange(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestReadCPURangeErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "empty CPU list"},
		{" \n", "empty CPU list"},
		{",", "missing CPU number"},
		{"1,,2", "missing CPU number"},
		{"1,", "missing CPU number"},
		{"-1", "missing CPU number"},
		{"1-", "missing CPU number"},
		{"1--2", "bad CPU number"},
		{"1-2-3", "bad CPU number"},
		{"a", "bad CPU number"},
		{"+1", "bad CPU number"},
		{"0x1", "bad CPU number"},
		{"1 ,2", "bad CPU number"},
		{"1\n2", "bad CPU number"},
		{"3-1", "ends before it starts"},
		{"65536", "not below 65536"},
		{"0-4294967295", "not below"},
		{"99999999999999999999", "bad CPU number"},
		{"0-3,2", "CPU 2 listed twice"},
		{"1,1", "CPU 1 listed twice"},
	} {
		got, err := ReadCPURange(tc.in)
		if err == nil {
			t.Errorf("ReadCPURange(%q) = %v, want an error", tc.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ReadCPURange(%q): error %q does not mention %q", tc.in, err, tc.msg)
		}
		if got != nil {
			t.Errorf("ReadCPURange(%q) returned %v with its error", tc.in, got)
		}
	}
}

// TestSysfsFiles parses the real CPU lists of this machine and checks the
// kernel's invariants: online ⊆ present ⊆ possible, possible starts at CPU 0
// and is one contiguous range.
func TestSysfsFiles(t *testing.T) {
	sets := map[string][]uint{}
	for _, name := range []string{"online", "present", "possible"} {
		b, err := os.ReadFile("/sys/devices/system/cpu/" + name)
		if err != nil {
			t.Fatal(err)
		}
		cpus, err := ReadCPURange(string(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(cpus) == 0 {
			t.Fatalf("%s: no CPUs", name)
		}
		for i := 1; i < len(cpus); i++ {
			if cpus[i] <= cpus[i-1] {
				t.Fatalf("%s: %v is not ascending", name, cpus)
			}
		}
		sets[name] = cpus
	}
	in := func(x uint, s []uint) bool {
		for _, y := range s {
			if x == y {
				return true
			}
		}
		return false
	}
	for _, c := range sets["online"] {
		if !in(c, sets["present"]) {
			t.Errorf("online CPU %d not present %v", c, sets["present"])
		}
	}
	for _, c := range sets["present"] {
		if !in(c, sets["possible"]) {
			t.Errorf("present CPU %d not possible %v", c, sets["possible"])
		}
	}
	for i, c := range sets["possible"] {
		if c != uint(i) {
			t.Fatalf("possible CPUs %v are not 0..n-1", sets["possible"])
		}
	}
}

func FuzzReadCPURange(f *testing.F) {
	for _, s := range []string{"0", "0-3,5,7-8\n", "1,,2", "3-1", "0-65535", "1-2-3", " 4 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ReadCPURange(s)
		if err != nil {
			if cpus != nil {
				t.Fatalf("%q: result %v with error %v", s, cpus, err)
			}
			return
		}
		if len(cpus) == 0 || len(cpus) > MaxCPUs {
			t.Fatalf("%q: %d CPUs without error", s, len(cpus))
		}
		seen := map[uint]bool{}
		for _, c := range cpus {
			if c >= MaxCPUs || seen[c] {
				t.Fatalf("%q: bad or repeated CPU %d in %v", s, c, cpus)
			}
			seen[c] = true
		}
	})
}
