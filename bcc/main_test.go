package bcc

import (
	"encoding/binary"
	"testing"
)

// lookupU64 reads the u64 at index key of the array table name.
func lookupU64(t testing.TB, m *Module, name string, key uint32) uint64 {
	t.Helper()
	var k [4]byte
	binary.NativeEndian.PutUint32(k[:], key)
	v, err := NewTable(m.TableId(name), m).Get(k[:])
	if err != nil {
		t.Fatalf("lookup %s[%d]: %v", name, key, err)
	}
	if len(v) != 8 {
		t.Fatalf("lookup %s[%d]: %d-byte value, want 8", name, key, len(v))
	}
	return binary.NativeEndian.Uint64(v)
}

// mustNewModule compiles code or fails the test.
func mustNewModule(t testing.TB, code string, cflags ...string) *Module {
	t.Helper()
	m, err := NewModuleWithError(code, cflags)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
