package bcc

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// The sentinel errors carry no "bcc: " prefix: they are wrapped by errors
// that have it, so that a message says "bcc: " once.
var (
	// ErrClosed is returned when a module, table or reader is used after Close.
	ErrClosed = errors.New("use of closed object")
	// ErrNotSupported is returned when the running kernel lacks a feature
	// (for example kprobes on a kernel built without CONFIG_KPROBES).
	ErrNotSupported = errors.New("not supported by this kernel")
	// ErrNotFound is returned for a missing function, table, tracepoint,
	// symbol, process or device.
	ErrNotFound = errors.New("not found")
	// ErrKeyNotExist is returned by table lookups of a key the table lacks.
	// It also matches fs.ErrNotExist: errors.Is(err, fs.ErrNotExist) holds
	// for a missing key, as gobpf's raw ENOENT did (os.IsNotExist, which
	// does not follow wrapped errors, does not).
	ErrKeyNotExist error = &notExistError{"key does not exist"}
)

// notExistError is a sentinel that also matches fs.ErrNotExist.
type notExistError struct{ msg string }

func (e *notExistError) Error() string        { return e.msg }
func (e *notExistError) Is(target error) bool { return target == fs.ErrNotExist }

// prefix starts every error message of the package.
const prefix = "bcc: "

// errorf is fmt.Errorf with the "bcc: " prefix, which it also removes from
// the messages of wrapped errors of this package, so that the prefix
// appears once however deeply errors are wrapped.
func errorf(format string, args ...any) error {
	err := fmt.Errorf(prefix+format, args...)
	msg := err.Error()
	if !strings.Contains(msg[len(prefix):], prefix) {
		return err
	}
	return &prefixedError{msg: prefix + strings.ReplaceAll(msg[len(prefix):], ": "+prefix, ": "), err: err}
}

// prefixedError is an error whose message had inner prefixes removed.
type prefixedError struct {
	msg string
	err error
}

func (e *prefixedError) Error() string { return e.msg }
func (e *prefixedError) Unwrap() error { return e.err }
