package bcc

import "errors"

var (
	// ErrClosed is returned when a module, table or reader is used after Close.
	ErrClosed = errors.New("bcc: use of closed object")
	// ErrNotSupported is returned when the running kernel lacks a feature
	// (for example kprobes on a kernel built without CONFIG_KPROBES).
	ErrNotSupported = errors.New("bcc: not supported by this kernel")
	// ErrNotFound is returned for a missing function, table, tracepoint,
	// symbol or device.
	ErrNotFound = errors.New("bcc: not found")
	// ErrKeyNotExist is returned by table lookups of a key the table lacks.
	ErrKeyNotExist = errors.New("bcc: key does not exist")
)
