package bcc

import (
	"fmt"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// IsQueueStack reports whether table is a BPF_MAP_TYPE_QUEUE or
// BPF_MAP_TYPE_STACK map (BPF_QUEUE/BPF_STACK in bcc C code).
func IsQueueStack(table *Table) bool {
	return table != nil && table.err == nil &&
		(table.mapType == bpfsys.BPF_MAP_TYPE_QUEUE || table.mapType == bpfsys.BPF_MAP_TYPE_STACK)
}

// QueueStack gives access to a queue or stack table, whose elements have
// no keys: Push adds one, Pop removes the next one (oldest for a queue,
// newest for a stack) and Peek reads it without removing it.
type QueueStack struct {
	*Table
}

// NewQueueStack wraps table, which should satisfy IsQueueStack.
func NewQueueStack(table *Table) *QueueStack {
	return &QueueStack{Table: table}
}

// Push adds leaf (LeafSize bytes). flags is 0 (BPF_ANY; fails when full)
// or BPF_EXIST (2), which makes a full queue or stack drop its oldest
// element.
func (queue *QueueStack) Push(leaf []byte, flags int) error {
	t := queue.Table
	if t == nil {
		return errZeroTable
	}
	if t.err != nil {
		return t.err
	}
	if len(leaf) != t.leafSize {
		return fmt.Errorf("QueueStack.Push %s: leaf is %d bytes, want %d", t.name, len(leaf), t.leafSize)
	}
	if err := t.update(nil, bptr(leaf), uint64(flags)); err != nil {
		return fmt.Errorf("QueueStack.Push %s: %w", t.name, err)
	}
	return nil
}

func (queue *QueueStack) get(op string, remove bool) ([]byte, error) {
	t := queue.Table
	if t == nil {
		return nil, errZeroTable
	}
	if t.err != nil {
		return nil, t.err
	}
	leaf := make([]byte, t.leafSize+1) // +1: never a zero-size buffer
	if err := t.begin(); err != nil {
		return nil, err
	}
	var err error
	if remove {
		err = bpfsys.MapLookupAndDeleteElem(t.fd, nil, unsafe.Pointer(&leaf[0]))
	} else {
		err = bpfsys.MapLookupElem(t.fd, nil, unsafe.Pointer(&leaf[0]))
	}
	t.end()
	if err != nil {
		return nil, t.opError(op, nil, err)
	}
	return leaf[:t.leafSize:t.leafSize], nil
}

// Pop removes the next element and returns it. An empty queue or stack
// gives an error wrapping ErrKeyNotExist.
func (queue *QueueStack) Pop() ([]byte, error) { return queue.get("QueueStack.Pop", true) }

// PopP is Pop returning a pointer to the element's bytes.
func (queue *QueueStack) PopP() (unsafe.Pointer, error) {
	b, err := queue.get("QueueStack.PopP", true)
	if err != nil {
		return nil, err
	}
	return unsafe.Pointer(unsafe.SliceData(b)), nil
}

// Peek returns the next element without removing it. An empty queue or
// stack gives an error wrapping ErrKeyNotExist.
func (queue *QueueStack) Peek() ([]byte, error) { return queue.get("QueueStack.Peek", false) }

// PeekP is Peek returning a pointer to the element's bytes.
func (queue *QueueStack) PeekP() (unsafe.Pointer, error) {
	b, err := queue.get("QueueStack.PeekP", false)
	if err != nil {
		return nil, err
	}
	return unsafe.Pointer(unsafe.SliceData(b)), nil
}
