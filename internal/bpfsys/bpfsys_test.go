package bpfsys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/iovisor/gobpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// newHash creates a u32->u64 hash; the caller closes it.
func newHash(t *testing.T, max uint32) int {
	t.Helper()
	a := MapCreateAttr{MapType: BPF_MAP_TYPE_HASH, KeySize: 4, ValueSize: 8, MaxEntries: max}
	a.SetName("bpfsys_test")
	fd, err := MapCreate(&a)
	if err != nil {
		t.Fatalf("MapCreate: %v", err)
	}
	return fd
}

func TestMapElemOps(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	fd := newHash(t, 16)
	defer unix.Close(fd)
	for k := uint32(0); k < 10; k++ {
		v := uint64(k) * 100
		if err := MapUpdateElem(fd, unsafe.Pointer(&k), unsafe.Pointer(&v), BPF_NOEXIST); err != nil {
			t.Fatal(err)
		}
	}
	k := uint32(3)
	v := uint64(1)
	if err := MapUpdateElem(fd, unsafe.Pointer(&k), unsafe.Pointer(&v), BPF_NOEXIST); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("NOEXIST on existing key: %v", err)
	}
	var got uint64
	if err := MapLookupElem(fd, unsafe.Pointer(&k), unsafe.Pointer(&got)); err != nil || got != 300 {
		t.Fatalf("lookup: %d %v", got, err)
	}
	if err := MapDeleteElem(fd, unsafe.Pointer(&k)); err != nil {
		t.Fatal(err)
	}
	if err := MapLookupElem(fd, unsafe.Pointer(&k), unsafe.Pointer(&got)); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("lookup of deleted key: %v", err)
	}
	if !strings.Contains(fmt.Sprint(MapDeleteElem(fd, unsafe.Pointer(&k))), "BPF_MAP_DELETE_ELEM") {
		t.Fatal("error does not name the command")
	}
	seen := map[uint32]bool{}
	var cur, next uint32
	var kp unsafe.Pointer
	for {
		if err := MapGetNextKey(fd, kp, unsafe.Pointer(&next)); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				t.Fatal(err)
			}
			break
		}
		seen[next] = true
		cur = next
		kp = unsafe.Pointer(&cur)
	}
	if len(seen) != 9 || seen[3] {
		t.Fatalf("iteration saw %v", seen)
	}
	info, err := GetMapInfo(fd)
	if err != nil || info.Type != BPF_MAP_TYPE_HASH || info.KeySize != 4 || info.ValueSize != 8 || info.MaxEntries != 16 || info.Name != "bpfsys_test" {
		t.Fatalf("info %+v %v", info, err)
	}
}

func TestMapBatch(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	fd := newHash(t, 1000)
	defer unix.Close(fd)
	const n = 500
	keys := make([]uint32, n)
	vals := make([]uint64, n)
	for i := range keys {
		keys[i], vals[i] = uint32(i), uint64(i)*3
	}
	cnt := uint32(n)
	if err := MapUpdateBatch(fd, unsafe.Pointer(&keys[0]), unsafe.Pointer(&vals[0]), &cnt, 0); err != nil || cnt != n {
		t.Fatalf("update batch: %d %v", cnt, err)
	}
	outK := make([]uint32, 128)
	outV := make([]uint64, 128)
	var cursor uint32
	var in unsafe.Pointer
	total := 0
	for {
		c := uint32(len(outK))
		err := MapLookupBatch(fd, in, unsafe.Pointer(&cursor), unsafe.Pointer(&outK[0]), unsafe.Pointer(&outV[0]), &c)
		for i := 0; i < int(c); i++ {
			if outV[i] != uint64(outK[i])*3 {
				t.Fatalf("key %d value %d", outK[i], outV[i])
			}
		}
		total += int(c)
		if errors.Is(err, unix.ENOENT) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		in = unsafe.Pointer(&cursor)
	}
	if total != n {
		t.Fatalf("batch lookup saw %d of %d", total, n)
	}
	cnt = 100
	if err := MapDeleteBatch(fd, unsafe.Pointer(&keys[0]), &cnt); err != nil || cnt != 100 {
		t.Fatalf("delete batch %d %v", cnt, err)
	}
	var v uint64
	if err := MapLookupElem(fd, unsafe.Pointer(&keys[50]), unsafe.Pointer(&v)); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("deleted key still there: %v", err)
	}
}

func TestProgLoadTestRunPin(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	const xdpPass, xdpDrop = 2, 1
	fd, err := ProgLoad(&ProgLoadAttr{Type: BPF_PROG_TYPE_XDP, Insns: []Insn{MovImm(0, xdpDrop), Exit()}, License: "GPL", Name: "drop"})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	pkt := make([]byte, 64)
	out := make([]byte, 128)
	a := TestRunAttr{ProgFd: fd, DataIn: pkt, DataOut: out, Repeat: 10}
	if err := ProgTestRun(&a); err != nil {
		t.Fatal(err)
	}
	if a.Retval != xdpDrop || a.DataSizeOut != 64 {
		t.Fatalf("retval %d size %d", a.Retval, a.DataSizeOut)
	}
	info, err := GetProgInfo(fd)
	if err != nil || info.Type != BPF_PROG_TYPE_XDP || info.Name != "drop" || info.Tag == [8]byte{} {
		t.Fatalf("prog info %+v %v", info, err)
	}
	dir, err := os.MkdirTemp("/sys/fs/bpf", "bpfsys-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "prog")
	if err := ObjPin(fd, p); err != nil {
		t.Fatal(err)
	}
	fd2, err := ObjGet(p)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd2)
	info2, err := GetProgInfo(fd2)
	if err != nil || info2.ID != info.ID {
		t.Fatalf("pinned prog is %+v, want id %d (%v)", info2, info.ID, err)
	}
	if _, err := ObjGet(filepath.Join(dir, "missing")); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("ObjGet of missing pin: %v", err)
	}
}

func TestVerifierLog(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	// Returns without setting r0: the verifier rejects "R0 !read_ok".
	_, err := ProgLoad(&ProgLoadAttr{Type: BPF_PROG_TYPE_SOCKET_FILTER, Insns: []Insn{Exit()}, License: "GPL"})
	var ve *VerifierError
	if !errors.As(err, &ve) || !errors.Is(err, unix.EACCES) {
		t.Fatalf("want verifier error, got %v", err)
	}
	if !strings.Contains(ve.Log, "R0 !read_ok") {
		t.Fatalf("log lacks the verifier's reason:\n%s", ve.Log)
	}
	if _, err := ProgLoad(&ProgLoadAttr{Type: BPF_PROG_TYPE_XDP}); err == nil {
		t.Fatal("empty program loaded")
	}
}
