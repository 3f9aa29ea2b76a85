package bcc

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/iovisor/gobpf/internal/testutil"
)

func u32le(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func TestQueueStack(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := mustNewModule(t, `
BPF_QUEUE(q, u32, 3);
BPF_STACK(s, u32, 3);
BPF_HASH(h, u32, u32, 4);
int noop(void *ctx) { u32 v = 1; q.push(&v, 0); s.push(&v, 0); h.lookup(&v); return 0; }
`)
	defer m.Close()
	if IsQueueStack(NewTable(m.TableId("h"), m)) || IsQueueStack(nil) {
		t.Error("IsQueueStack of a hash table or nil")
	}
	for _, tc := range []struct {
		name  string
		order []uint32 // pop order after pushing 1, 2, 3
	}{{"q", []uint32{1, 2, 3}}, {"s", []uint32{3, 2, 1}}} {
		tb := NewTable(m.TableId(tc.name), m)
		if !IsQueueStack(tb) {
			t.Fatalf("IsQueueStack(%s) = false", tc.name)
		}
		qs := NewQueueStack(tb)
		if _, err := qs.Pop(); !errors.Is(err, ErrKeyNotExist) {
			t.Errorf("%s: Pop of empty: %v", tc.name, err)
		}
		for v := uint32(1); v <= 3; v++ {
			if err := qs.Push(u32le(v), 0); err != nil {
				t.Fatalf("%s: Push(%d): %v", tc.name, v, err)
			}
		}
		if err := qs.Push(u32le(4), 0); err == nil {
			t.Errorf("%s: Push into a full map succeeded", tc.name)
		}
		if err := qs.Push([]byte{1}, 0); err == nil {
			t.Errorf("%s: Push of a 1-byte leaf succeeded", tc.name)
		}
		if b, err := qs.Peek(); err != nil || binary.LittleEndian.Uint32(b) != tc.order[0] {
			t.Errorf("%s: Peek = %x, %v; want %d", tc.name, b, err, tc.order[0])
		}
		p, err := qs.PeekP()
		if err != nil || *(*uint32)(p) != tc.order[0] {
			t.Errorf("%s: PeekP: %v", tc.name, err)
		}
		for i, want := range tc.order {
			var got uint32
			if i == 0 {
				p, err := qs.PopP()
				if err != nil {
					t.Fatalf("%s: PopP: %v", tc.name, err)
				}
				got = *(*uint32)(p)
			} else {
				b, err := qs.Pop()
				if err != nil {
					t.Fatalf("%s: Pop: %v", tc.name, err)
				}
				got = binary.LittleEndian.Uint32(b)
			}
			if got != want {
				t.Errorf("%s: pop %d = %d, want %d", tc.name, i, got, want)
			}
		}
		if _, err := qs.Peek(); !errors.Is(err, ErrKeyNotExist) {
			t.Errorf("%s: Peek of empty: %v", tc.name, err)
		}
	}
	m.Close()
	if err := NewQueueStack(NewTable(m.TableId("q"), m)).Push(u32le(1), 0); err == nil {
		t.Error("Push after Close succeeded")
	}
}

// TestGetSymbolByAddr covers gobpf's Module.GetSymbolByAddr and
// GetDemangleSymbolByAddr, which need no loaded program.
func TestGetSymbolByAddr(t *testing.T) {
	sc, err := NewSymbolCache(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	addr, err := sc.ResolveName("c", "getpid")
	if err != nil {
		t.Skip(err)
	}
	var m *Module
	if got := m.GetSymbolByAddr(addr, os.Getpid()); got != "getpid" && got != "__getpid" {
		t.Errorf("GetSymbolByAddr(getpid) = %q", got)
	}
	if got := m.GetDemangleSymbolByAddr(addr, os.Getpid()); got != "getpid" && got != "__getpid" {
		t.Errorf("GetDemangleSymbolByAddr(getpid) = %q", got)
	}
	if got := m.GetSymbolByAddr(1, os.Getpid()); got != "" {
		t.Errorf("GetSymbolByAddr(1) = %q, want \"\"", got)
	}
	kaddr := uint64(0)
	if s, err := NewSymbolCache(-1); err == nil {
		kaddr, _ = s.ResolveName("", "__x64_sys_getpid")
		s.Close()
	}
	if kaddr != 0 {
		if got := m.GetSymbolByAddr(kaddr, -1); got == "" {
			t.Error("GetSymbolByAddr of a kernel function: \"\"")
		}
	}
}
