package cpupossible

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
	"github.com/iovisor/gobpf/pkg/cpuonline"
	"golang.org/x/sys/unix"
)

// TestGetMatchesPerCPUMap checks Get against the kernel's own count: looking
// up an element of a per-CPU array copies one 8-byte slot per possible CPU.
func TestGetMatchesPerCPUMap(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	cpus, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cpus {
		if c != uint(i) {
			t.Fatalf("Get() = %v: possible CPUs are always 0..n-1", cpus)
		}
	}
	online, err := cpuonline.Get()
	if err != nil {
		t.Fatal(err)
	}
	if len(online) > len(cpus) || online[len(online)-1] > cpus[len(cpus)-1] {
		t.Fatalf("online %v is not within possible %v", online, cpus)
	}

	b, err := os.ReadFile("/sys/devices/system/cpu/kernel_max")
	if err != nil {
		t.Fatal(err)
	}
	kmax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	a := bpfsys.MapCreateAttr{MapType: bpfsys.BPF_MAP_TYPE_PERCPU_ARRAY, KeySize: 4, ValueSize: 8, MaxEntries: 1}
	a.SetName("cpupossible")
	fd, err := bpfsys.MapCreate(&a)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// Room for every CPU the kernel could be built for, pre-filled with a
	// pattern: the slots the kernel overwrote (with zeros) count the CPUs.
	buf := make([]uint64, kmax+1)
	for i := range buf {
		buf[i] = 0xdeadbeefdeadbeef
	}
	var key uint32
	if err := bpfsys.MapLookupElem(fd, unsafe.Pointer(&key), unsafe.Pointer(&buf[0])); err != nil {
		t.Fatal(err)
	}
	n := 0
	for n < len(buf) && buf[n] == 0 {
		n++
	}
	if n != len(cpus) {
		t.Fatalf("per-CPU map has %d slots, Get() = %v", n, cpus)
	}
}

func TestGetIsCachedCopy(t *testing.T) {
	a, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]uint(nil), a...)
	a[0] = 12345
	b, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("second Get() = %v after modifying the first result, want %v", b, want)
	}
}

func TestGetFixedFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "possible")
	for _, tc := range []struct {
		content string
		want    []uint
		errMsg  string
	}{
		{"0-7\n", []uint{0, 1, 2, 3, 4, 5, 6, 7}, ""},
		{"0\n", []uint{0}, ""},
		{"", nil, "empty CPU list"},
		{"7-0\n", nil, "ends before it starts"},
	} {
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := get(p)
		if tc.errMsg != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errMsg) {
				t.Errorf("%q: got %v, %v; want an error with %q", tc.content, got, err, tc.errMsg)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %v, %v; want %v", tc.content, got, err, tc.want)
		}
	}
	if _, err := get(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}
