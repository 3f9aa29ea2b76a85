package cpuonline

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// statCPUs lists the CPUs /proc/stat has a "cpuN" line for: the online ones.
func statCPUs(t *testing.T) []uint {
	t.Helper()
	f, err := os.Open("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cpus []uint
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, _, _ := strings.Cut(s.Text(), " ")
		if n, err := strconv.ParseUint(strings.TrimPrefix(name, "cpu"), 10, 32); err == nil && strings.HasPrefix(name, "cpu") {
			cpus = append(cpus, uint(n))
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return cpus
}

func TestGetMatchesProcStat(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	got, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	if want := statCPUs(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("Get() = %v, /proc/stat lists %v", got, want)
	}
	if len(got) < runtime.NumCPU() {
		t.Fatalf("Get() = %v, fewer than runtime.NumCPU() = %d", got, runtime.NumCPU())
	}
}

// TestRunOnEveryOnlineCPU pins a thread to each online CPU in turn and runs
// a BPF program there that returns bpf_get_smp_processor_id(): every CPU Get
// reports must really run code, and say its own number.
func TestRunOnEveryOnlineCPU(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	cpus, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := bpfsys.ProgLoad(&bpfsys.ProgLoadAttr{
		Type: bpfsys.BPF_PROG_TYPE_SOCKET_FILTER,
		Insns: []bpfsys.Insn{
			{Code: 0x85, Imm: 8}, // call bpf_get_smp_processor_id
			bpfsys.Exit(),
		},
		License: "GPL",
		Name:    "cpuonline_test",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	errc := make(chan error)
	go func() {
		// The thread ends with the goroutine (no UnlockOSThread), so its
		// changed affinity never leaks into the runtime's thread pool.
		runtime.LockOSThread()
		errc <- func() error {
			for _, cpu := range cpus {
				var set unix.CPUSet
				set.Set(int(cpu))
				if err := unix.SchedSetaffinity(0, &set); err != nil {
					return err
				}
				a := bpfsys.TestRunAttr{ProgFd: fd, DataIn: make([]byte, 64), Repeat: 1}
				if err := bpfsys.ProgTestRun(&a); err != nil {
					return err
				}
				if a.Retval != uint32(cpu) {
					return errors.New("program pinned to CPU " + strconv.Itoa(int(cpu)) + " ran on CPU " + strconv.Itoa(int(a.Retval)))
				}
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestGetFixedFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		content string
		want    []uint
		errMsg  string
	}{
		{"0-1\n", []uint{0, 1}, ""},
		{"0,2-3\n", []uint{0, 2, 3}, ""},
		{"\n", nil, "empty CPU list"},
		{"0-x\n", nil, "bad CPU number"},
	} {
		p := filepath.Join(dir, "online")
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := get(p)
		if tc.errMsg != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errMsg) || !strings.Contains(err.Error(), p) {
				t.Errorf("%q: got %v, %v; want an error naming %s and %q", tc.content, got, err, p, tc.errMsg)
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
