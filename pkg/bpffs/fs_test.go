package bpffs

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// mountCount counts the mounts at exactly dir in /proc/self/mountinfo.
func mountCount(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 && fields[4] == dir {
			n++
		}
	}
	return n
}

// pinRoundTrip pins a fresh BPF map under dir, opens the pin, and checks both
// fds are the same map: dir is a working bpffs.
func pinRoundTrip(t *testing.T, dir string) {
	t.Helper()
	a := bpfsys.MapCreateAttr{MapType: bpfsys.BPF_MAP_TYPE_ARRAY, KeySize: 4, ValueSize: 8, MaxEntries: 1}
	a.SetName("bpffs_test")
	fd, err := bpfsys.MapCreate(&a)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	key, val := uint32(0), uint64(0x1234abcd)
	if err := bpfsys.MapUpdateElem(fd, unsafe.Pointer(&key), unsafe.Pointer(&val), bpfsys.BPF_ANY); err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(dir, "map")
	if err := bpfsys.ObjPin(fd, pin); err != nil {
		t.Fatalf("pin under %s: %v", dir, err)
	}
	defer os.Remove(pin)
	fd2, err := bpfsys.ObjGet(pin)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd2)
	var got uint64
	if err := bpfsys.MapLookupElem(fd2, unsafe.Pointer(&key), unsafe.Pointer(&got)); err != nil || got != val {
		t.Fatalf("pinned map holds %#x (%v), want %#x", got, err, val)
	}
}

func TestMagic(t *testing.T) {
	if uint32(FsMagicBPFFS) != unix.BPF_FS_MAGIC {
		t.Fatalf("FsMagicBPFFS = %#x, want %#x", uint32(FsMagicBPFFS), unix.BPF_FS_MAGIC)
	}
}

func TestSysFsBPF(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	ok, err := IsMounted()
	if err != nil || !ok {
		t.Fatalf("IsMounted() = %v, %v; want true (bpffs at %s)", ok, err, BPFFSPath)
	}
	before := mountCount(t, BPFFSPath)
	if before == 0 {
		t.Fatalf("no mount at %s in mountinfo", BPFFSPath)
	}
	if err := Mount(); err != nil {
		t.Fatal(err)
	}
	if after := mountCount(t, BPFFSPath); after != before {
		t.Fatalf("Mount() with bpffs already mounted changed the mounts at %s: %d -> %d", BPFFSPath, before, after)
	}
	dir, err := os.MkdirTemp(BPFFSPath, "bpffs-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	pinRoundTrip(t, dir)
}

func TestNotBPFFS(t *testing.T) {
	for _, p := range []string{"/", "/proc", "/sys/kernel/tracing", t.TempDir()} {
		ok, err := IsMountedAt(p)
		if err != nil || ok {
			t.Errorf("IsMountedAt(%s) = %v, %v; want false", p, ok, err)
		}
	}
	missing := filepath.Join(t.TempDir(), "missing")
	ok, err := IsMountedAt(missing)
	if ok || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("IsMountedAt(missing) = %v, %v; want an ErrNotExist naming the path", ok, err)
	}
}

func TestMountAtTempDir(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	// A directory that does not exist yet: MountAt creates it.
	dir := filepath.Join(t.TempDir(), "a", "bpf")
	if err := MountAt(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) }) // in case the test fails midway
	if ok, err := IsMountedAt(dir); err != nil || !ok {
		t.Fatalf("IsMountedAt after MountAt = %v, %v", ok, err)
	}
	if n := mountCount(t, dir); n != 1 {
		t.Fatalf("%d mounts at %s, want 1", n, dir)
	}
	if err := MountAt(dir); err != nil {
		t.Fatal(err)
	}
	if n := mountCount(t, dir); n != 1 {
		t.Fatalf("second MountAt: %d mounts at %s, want 1", n, dir)
	}
	pinRoundTrip(t, dir)
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	if ok, err := IsMountedAt(dir); err != nil || ok {
		t.Fatalf("IsMountedAt after unmount = %v, %v; want false", ok, err)
	}
	if n := mountCount(t, dir); n != 0 {
		t.Fatalf("%d mounts left at %s", n, dir)
	}
}

func TestMountAtFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := MountAt(f)
	if err == nil {
		unix.Unmount(f, unix.MNT_DETACH)
		t.Fatal("MountAt(a regular file) succeeded")
	}
	if !strings.Contains(err.Error(), f) {
		t.Fatalf("error %q does not name %s", err, f)
	}
}
