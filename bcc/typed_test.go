package bcc

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

type tK2 struct{ A, B uint32 }

func TestTypedTable(t *testing.T) {
	tt, err := NewTypedTable[tK2, uint64](tTable(t, "hash"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[tK2]uint64{}
	for i := uint32(1); i <= 20; i++ {
		k, v := tK2{i, i * 2}, uint64(i)<<40|uint64(i)
		if err := tt.Set(k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	if v, err := tt.Get(tK2{4, 8}); err != nil || v != want[tK2{4, 8}] {
		t.Fatalf("Get = %#x, %v", v, err)
	}
	// The binary layout is the C struct's.
	if raw, err := tt.Table().Get(tK2b(4, 8)); err != nil || hostOrder.Uint64(raw) != want[tK2{4, 8}] {
		t.Fatalf("raw Get = %x, %v", raw, err)
	}
	if err := tt.Delete(tK2{4, 8}); err != nil {
		t.Fatal(err)
	}
	delete(want, tK2{4, 8})
	if _, err := tt.Get(tK2{4, 8}); !errors.Is(err, ErrKeyNotExist) {
		t.Fatalf("Get of a deleted key: %v", err)
	}
	if err := tt.Delete(tK2{4, 8}); !errors.Is(err, ErrKeyNotExist) {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	got := map[tK2]uint64{}
	for k, v := range tt.All() {
		if _, dup := got[k]; dup {
			t.Fatalf("All yielded %v twice", k)
		}
		got[k] = v
	}
	if err := tt.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("All: %d entries, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("All: %v = %#x, want %#x", k, got[k], v)
		}
	}
	// Stopping early is fine.
	n := 0
	var iterErr error
	for range tt.AllErr(&iterErr) {
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 || iterErr != nil {
		t.Fatalf("early stop: %d, %v", n, iterErr)
	}
}

func TestTypedTableKernelFilled(t *testing.T) {
	calls, err := NewTypedTable[uint32, uint64](tTable(t, "calls"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 11; i++ {
		syscall.Getppid()
	}
	if v, err := calls.Get(uint32(os.Getpid())); err != nil || v != 11 {
		t.Fatalf("calls[self] = %d, %v; want 11", v, err)
	}
}

func TestTypedTablePerCPU(t *testing.T) {
	tt, err := NewTypedTable[uint32, uint32](tTable(t, "pcarr"))
	if err != nil {
		t.Fatal(err)
	}
	ncpu := tNumCPU(t)
	vals := make([]uint32, ncpu)
	for i := range vals {
		vals[i] = uint32(0x1000 + i)
	}
	if err := tt.SetPerCPU(2, vals); err != nil {
		t.Fatal(err)
	}
	got, err := tt.GetPerCPU(2)
	if err != nil || len(got) != ncpu {
		t.Fatalf("GetPerCPU = %v, %v", got, err)
	}
	for i := range vals {
		if got[i] != vals[i] {
			t.Fatalf("cpu %d: %#x, want %#x", i, got[i], vals[i])
		}
	}
	if err := tt.Set(3, 77); err != nil {
		t.Fatal(err)
	}
	if got, _ := tt.GetPerCPU(3); got[ncpu-1] != 77 || got[0] != 77 {
		t.Fatalf("Set on per-CPU: %v", got)
	}
	if _, err := tt.Get(2); err == nil {
		t.Fatal("Get on a per-CPU table succeeded")
	}
	if err := tt.SetPerCPU(2, vals[:0]); err == nil {
		t.Fatal("SetPerCPU with no values succeeded")
	}
	seen := 0
	for k, v := range tt.AllPerCPU() {
		seen++
		if len(v) != ncpu {
			t.Fatalf("AllPerCPU %d: %d values", k, len(v))
		}
		switch k {
		case 2:
			if v[0] != vals[0] {
				t.Fatalf("AllPerCPU 2: %v", v)
			}
		case 3:
			if v[0] != 77 {
				t.Fatalf("AllPerCPU 3: %v", v)
			}
		default:
			if v[0] != 0 {
				t.Fatalf("AllPerCPU %d: %v", k, v)
			}
		}
	}
	if seen != 4 || tt.Err() != nil {
		t.Fatalf("AllPerCPU: %d entries, %v", seen, tt.Err())
	}
	for range tt.All() {
		t.Fatal("All on a per-CPU table yielded")
	}
	if tt.Err() == nil {
		t.Fatal("All on a per-CPU table: no error")
	}
	if _, err := NewTypedTable[uint32, uint64](tTable(t, "pcarr")); err == nil {
		t.Fatal("8-byte values on a table of u32 accepted")
	}
}

func TestTypedTableTypeChecks(t *testing.T) {
	hash := tTable(t, "hash")
	if _, err := NewTypedTable[uint32, uint64](hash); err == nil {
		t.Fatal("4-byte keys on a table of 8-byte keys accepted")
	}
	if _, err := NewTypedTable[tK2, uint32](hash); err == nil {
		t.Fatal("4-byte values on a table of 8-byte values accepted")
	}
	if _, err := NewTypedTable[*uint64, uint64](hash); err == nil {
		t.Fatal("pointer keys accepted")
	}
	if _, err := NewTypedTable[tK2, struct{ p *byte }](hash); err == nil {
		t.Fatal("values holding a pointer accepted")
	}
	if _, err := NewTypedTable[[2]uint32, [8]byte](hash); err != nil {
		t.Fatalf("arrays of the right size refused: %v", err)
	}
	if _, err := NewTypedTable[tK2, uint64](nil); err == nil {
		t.Fatal("nil table accepted")
	}
}
