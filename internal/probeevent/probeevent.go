// Package probeevent names the kprobe and uprobe events that gobpf (its bcc
// and elf packages) registers in tracefs's kprobe_events and uprobe_events,
// and removes the ones that processes which died left behind.
//
// Where the kprobe/uprobe PMU cannot be used (kernels before 4.17, a
// container where /sys/devices/uprobe is not visible, a kretprobe with
// maxactive), a probe is a named entry of kprobe_events or uprobe_events.
// A process killed before it removed its entries leaves them there, and a
// restart that registers the same name fails with EEXIST: in a container
// the restarted program is pid 1 again, so names built from the pid
// collide. Names therefore hold a random per-process nonce, and the first
// registration in a process removes every entry with this library's prefix
// that no perf event uses any more: the kernel refuses (EBUSY) to remove
// an entry a live perf event uses, so only entries of processes that are
// gone, or of a process between writing its entry and opening it, go; the
// latter retries (see Retry).
package probeevent

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Prefix starts the name of every event this library registers.
const Prefix = "gobpf_"

// MaxNameLen is the kernel's limit on an event name (MAX_EVENT_NAME_LEN).
const MaxNameLen = 64

var (
	nonceMu sync.Mutex
	nonce   string
	seq     atomic.Uint64
)

// Nonce returns this process's random event name component (8 hex digits).
func Nonce() string {
	nonceMu.Lock()
	defer nonceMu.Unlock()
	if nonce == "" {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			// crypto/rand does not fail on Linux; fall back to the pid.
			nonce = fmt.Sprintf("%08x", os.Getpid())
		} else {
			nonce = hex.EncodeToString(b[:])
		}
	}
	return nonce
}

// SetNonce replaces the process's nonce. Tests use it to reproduce a
// restarted process whose names are those of its dead predecessor.
func SetNonce(n string) {
	nonceMu.Lock()
	nonce = n
	nonceMu.Unlock()
}

// Name returns a new event name "gobpf_<nonce>_<kind>_<target>_<n>", unique
// in the process (n counts) and, with high probability, among processes
// (the nonce), at most maxLen bytes long (use MaxNameLen minus what a
// library such as libbcc appends). Characters of target other than
// letters, digits and '_' become '_'; a long target keeps its end.
func Name(kind, target string, maxLen int) string {
	var t strings.Builder
	for _, r := range target {
		if r < 0x80 && (r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			t.WriteRune(r)
		} else {
			t.WriteByte('_')
		}
	}
	head := Prefix + Nonce() + "_" + kind + "_"
	tail := fmt.Sprintf("_%d", seq.Add(1))
	ts := t.String()
	if room := maxLen - len(head) - len(tail); len(ts) > room {
		if room < 0 {
			room = 0
		}
		ts = ts[len(ts)-room:]
	}
	return head + ts + tail
}

// TracefsRoots are where tracefs may be mounted.
var TracefsRoots = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// Root returns the first tracefs mount holding file ("uprobe_events" or
// "kprobe_events"), or "".
func Root(file string) string {
	for _, r := range TracefsRoots {
		if _, err := os.Stat(filepath.Join(r, file)); err == nil {
			return r
		}
	}
	return ""
}

var cleaned sync.Map // file identity -> *sync.Once

// CleanStaleOnce runs CleanStale(root, file) the first time it is called
// for that file in this process (however tracefs is reached: the debugfs
// path and /sys/kernel/tracing are one file), before any registration of
// the process, so that it never removes an entry of its own process
// between its registration and its opening.
func CleanStaleOnce(root, file string) {
	key := filepath.Join(root, file)
	var st unix.Stat_t
	if unix.Stat(key, &st) == nil {
		key = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	o, _ := cleaned.LoadOrStore(key, new(sync.Once))
	o.(*sync.Once).Do(func() { CleanStale(root, file) })
}

// CleanStale removes from root/file (kprobe_events or uprobe_events) every
// entry whose event name starts with Prefix and that no perf event uses,
// and returns the names it removed.
func CleanStale(root, file string) []string {
	unlock := lock(root, file, unix.LOCK_EX)
	if unlock == nil {
		return nil // registrations in progress for too long: next time
	}
	defer unlock()
	var removed []string
	for _, ev := range List(root, file) {
		if Remove(root, file, ev) == nil {
			removed = append(removed, ev)
		}
	}
	return removed
}

// List returns the "group/event" names of the entries of root/file whose
// event name starts with Prefix.
func List(root, file string) []string {
	f, err := os.Open(filepath.Join(root, file))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "p:uprobes/NAME /path:0x..." or "r16:kprobes/NAME func"
		head, _, _ := strings.Cut(sc.Text(), " ")
		_, ev, ok := strings.Cut(head, ":")
		if !ok {
			continue
		}
		if _, name, ok := strings.Cut(ev, "/"); ok && strings.HasPrefix(name, Prefix) {
			out = append(out, ev)
		}
	}
	return out
}

// Remove deletes event ev ("group/event", or "event") from root/file. An
// entry in use by a perf event is not removed: the error wraps EBUSY.
func Remove(root, file, ev string) error {
	f, err := os.OpenFile(filepath.Join(root, file), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString("-:" + ev + "\n"); err != nil {
		return fmt.Errorf("removing %s from %s: %w", ev, file, err)
	}
	return nil
}

// Hold takes the shared registration lock of root/file (an flock on the
// events file itself, which every process and container using that tracefs
// shares) and returns its release: a process holds it from writing its
// entry until it has opened it, and CleanStale takes it exclusively, so it
// never removes an entry between its registration and its opening. When
// the lock cannot be had within 2 s, Hold goes on without it (see Retry).
func Hold(root, file string) (release func()) {
	if unlock := lock(root, file, unix.LOCK_SH); unlock != nil {
		return unlock
	}
	return func() {}
}

// lock flocks root/file with how (LOCK_SH or LOCK_EX), trying for up to
// 2 s, and returns the unlock function, or nil.
func lock(root, file string, how int) func() {
	if root == "" {
		return nil
	}
	f, err := os.Open(filepath.Join(root, file))
	if err != nil {
		return nil
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() } // closing releases the lock
		}
		if err != unix.EWOULDBLOCK || time.Now().After(deadline) {
			f.Close()
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

// Retry reports whether a registration that failed with err should be
// tried again: another process's CleanStale may have removed the entry
// between its creation and its opening.
func Retry(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.EINVAL)
}
