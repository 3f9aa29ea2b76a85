package probeevent

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
