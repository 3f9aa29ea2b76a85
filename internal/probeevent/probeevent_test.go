package probeevent

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestName(t *testing.T) {
	SetNonce("")
	n := Nonce()
	if !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(n) || Nonce() != n {
		t.Fatalf("nonce %q: want 8 stable hex digits", n)
	}
	seen := map[string]bool{}
	for _, target := range []string{"", "do_sys_openat2", "/usr/lib/x86_64-linux-gnu/libc.so.6_1f2e0", strings.Repeat("é-x", 40)} {
		for _, max := range []int{MaxNameLen, MaxNameLen - 12, 20} {
			name := Name("p", target, max)
			if len(name) > max && len(Prefix+n+"_p__1") <= max {
				t.Errorf("Name(%q, %d) = %q: %d bytes", target, max, name, len(name))
			}
			if !strings.HasPrefix(name, Prefix+n+"_p_") || !regexp.MustCompile(`^[a-zA-Z0-9_]+$`).MatchString(name) {
				t.Errorf("Name(%q) = %q", target, name)
			}
			if seen[name] {
				t.Errorf("Name(%q) = %q twice", target, name)
			}
			seen[name] = true
		}
	}
	if got := Name("r", "libc.so.6_1f2e0", MaxNameLen); !strings.Contains(got, "_r_libc_so_6_1f2e0_") {
		t.Errorf("Name kept %q", got)
	}
}

// TestListRemove parses an events file and writes removals to it (a
// regular file standing for tracefs's).
func TestListRemove(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "uprobe_events")
	content := "p:uprobes/gobpf_0011aabb_p_prog_1129_1 /tmp/prog:0x0000000000001129\n" +
		"r:uprobes/p_bash_readline_bcc_12 /bin/bash:0x0000000000012345\n" +
		"r16:kprobes/gobpf_0011aabb_r_do_sys_openat2_2 do_sys_openat2\n" +
		"garbage\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got := List(root, "uprobe_events")
	want := []string{"uprobes/gobpf_0011aabb_p_prog_1129_1", "kprobes/gobpf_0011aabb_r_do_sys_openat2_2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("List = %q, want %q (this library's entries only)", got, want)
	}
	if err := Remove(root, "uprobe_events", want[0]); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	if !strings.HasSuffix(string(b), "-:"+want[0]+"\n") {
		t.Errorf("Remove wrote %q", b)
	}
}

// TestHoldDefersCleanStale registers an entry no perf event uses while
// holding the registration lock: CleanStale waits for the release, then
// removes it.
func TestHoldDefersCleanStale(t *testing.T) {
	root := Root("uprobe_events")
	if root == "" || os.Geteuid() != 0 {
		t.Skip("needs root and tracefs's uprobe_events")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ev := "uprobes/" + Name("p", "holdtest", MaxNameLen)
	release := Hold(root, "uprobe_events")
	f, err := os.OpenFile(filepath.Join(root, "uprobe_events"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("p:" + ev + " " + exe + ":0x0\n")
	f.Close()
	if err != nil {
		release()
		t.Fatal(err)
	}
	defer Remove(root, "uprobe_events", ev)
	done := make(chan []string, 1)
	go func() { done <- CleanStale(root, "uprobe_events") }()
	select {
	case r := <-done:
		t.Errorf("CleanStale ran while a registration held the lock (removed %q)", r)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	removed := <-done
	found := false
	for _, r := range removed {
		found = found || r == ev
	}
	if !found {
		t.Errorf("CleanStale after the release removed %q, not %s", removed, ev)
	}
	for _, l := range List(root, "uprobe_events") {
		if l == ev {
			t.Errorf("%s still listed", ev)
		}
	}
}
