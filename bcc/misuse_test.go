package bcc

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

var errorType = reflect.TypeOf((*error)(nil)).Elem()

// callMethod calls method name of m with args, turning a panic into a test
// error, and returns the error the method returned (nil if it returns none).
func callMethod(t *testing.T, m *Module, name string, args []reflect.Value) (err error, returnsErr bool) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s%v panicked: %v", name, fmtArgs(args), r)
		}
	}()
	out := reflect.ValueOf(m).MethodByName(name).Call(args)
	for _, o := range out {
		if o.Type() == errorType {
			returnsErr = true
			if !o.IsNil() {
				err = o.Interface().(error)
			}
		}
	}
	return err, returnsErr
}

func fmtArgs(args []reflect.Value) string {
	var s []string
	for _, a := range args {
		v := fmt.Sprintf("%#v", a.Interface())
		if len(v) > 20 {
			v = v[:20] + "..."
		}
		s = append(s, v)
	}
	return "(" + strings.Join(s, ", ") + ")"
}

// argsFor builds arguments for method typ from one value per kind.
func argsFor(t *testing.T, typ reflect.Type, str string, i int64, u uint64) []reflect.Value {
	var args []reflect.Value
	for k := 0; k < typ.NumIn(); k++ {
		in := typ.In(k)
		v := reflect.New(in).Elem()
		switch in.Kind() {
		case reflect.String:
			v.SetString(str)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			v.SetInt(i)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			v.SetUint(u)
		case reflect.Struct, reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface, reflect.Func:
			// the zero value: a nil pointer, an empty struct
		default:
			t.Fatalf("%v: no argument of kind %v: extend argsFor", typ, in.Kind())
		}
		args = append(args, v)
	}
	return args
}

// moduleMethods lists *Module's exported methods but Close.
func moduleMethods() []reflect.Method {
	var ms []reflect.Method
	typ := reflect.TypeOf(&Module{})
	for i := 0; i < typ.NumMethod(); i++ {
		if m := typ.Method(i); m.Name != "Close" {
			ms = append(ms, m)
		}
	}
	return ms
}

// TestNilModule calls every exported method of a nil *Module (what
// NewModule returns on failure): none panics, and each error wraps
// ErrClosed.
func TestNilModule(t *testing.T) {
	var m *Module
	for _, meth := range moduleMethods() {
		args := argsFor(t, reflect.ValueOf(m).MethodByName(meth.Name).Type(), "gobpf_nil", 1, 1)
		err, returnsErr := callMethod(t, m, meth.Name, args)
		if returnsErr && !errors.Is(err, ErrClosed) {
			t.Errorf("nil module: %s%v = %v, want ErrClosed", meth.Name, fmtArgs(args), err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "bcc: ") {
			t.Errorf("nil module: %s: error %q does not start with \"bcc: \"", meth.Name, err)
		}
	}
	m.Close()
}

// TestAbsurdArguments calls every exported method of a live module with
// absurd arguments (huge or negative numbers, empty, NUL-holding or very
// long strings): none panics, each returns an error, and the module still
// loads and runs its program afterwards.
func TestAbsurdArguments(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := mustNewModule(t, closeSource, fmt.Sprintf("-DTGID=%d", os.Getpid()))
	defer m.Close()
	strs := []string{"", "\x00", "no\x00such", strings.Repeat("a", 5000), "on_uprobe"}
	ints := []int64{-1, 1 << 62, math.MinInt64, math.MaxInt64, 1 << 32}
	uints := []uint64{1 << 62, math.MaxUint64, 1 << 32, 1 << 31}
	// Methods for which some absurd argument combinations are valid.
	mayWork := map[string]bool{
		"TableSize": true, "TableId": true, "TableDesc": true, "TableIter": true,
		"GetSymbolByAddr": true, "GetDemangleSymbolByAddr": true,
		// on_uprobe with a huge log size: the size is capped.
		"Load": true, "LoadKprobe": true, "LoadUprobe": true, "LoadNet": true,
		"LoadSocketFilter": true, "LoadTracepoint": true, "LoadRawTracepoint": true,
		"LoadPerfEvent": true, "LoadXDP": true, "LoadSchedCLS": true,
		"LoadSkMsg": true, "LoadSkSkb": true, "LoadSockops": true,
		"LoadCgroupSkb": true, "LoadCgroupSock": true, "LoadCgroupDevice": true,
		"LoadCgroupSysctl": true, "LoadWithOptions": true, "LoadKprobeMulti": true,
	}
	for _, meth := range moduleMethods() {
		mt := reflect.ValueOf(m).MethodByName(meth.Name).Type()
		for si, s := range strs {
			for ii, i := range ints {
				{
					u := uints[(si+ii)%len(uints)]
					args := argsFor(t, mt, s, i, u)
					err, returnsErr := callMethod(t, m, meth.Name, args)
					if returnsErr && err == nil && !mayWork[meth.Name] {
						t.Errorf("%s%v succeeded", meth.Name, fmtArgs(args))
					}
					if err != nil && (!strings.HasPrefix(err.Error(), "bcc: ") || strings.Count(err.Error(), "bcc:") != 1) {
						t.Errorf("%s%v: error %.200q should start with \"bcc: \", once", meth.Name, fmtArgs(args), err)
					}
				}
			}
		}
	}
	// A log size of 2^62 is capped, not allocated.
	if _, err := m.Load("tracepoint__syscalls__sys_enter_getppid", BPF_PROG_TYPE_TRACEPOINT, 1, 1<<62); err != nil {
		t.Fatalf("Load with a 2^62-byte log: %v", err)
	}
	// The module still works.
	fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AttachTracepoint("syscalls:sys_enter_getppid", fd); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		unix.Getppid()
	}
	if got := lookupU64(t, m, "hits", 0); got != 3 {
		t.Errorf("after the absurd calls the program saw %d getppid calls, want 3", got)
	}
}
