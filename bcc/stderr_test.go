package bcc

import (
	"bytes"
	"errors"
	"log"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stderrChildEnv selects what the re-executed test binary does.
const stderrChildEnv = "GOBPF_STDERR_CHILD"

// waitRedirected blocks until fd 2 no longer refers to the file it referred
// to at the start (a compile redirected it), or gives up after 10 s.
func waitRedirected(orig unix.Stat_t) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var st unix.Stat_t
		if unix.Fstat(2, &st) == nil && (st.Ino != orig.Ino || st.Dev != orig.Dev) {
			return true
		}
		time.Sleep(50 * time.Microsecond)
	}
	return false
}

// stderrChild runs in the child: a goroutine panics or logs while the main
// goroutine compiles a program clang rejects.
func stderrChild(mode string) {
	var orig unix.Stat_t
	unix.Fstat(2, &orig)
	logged := make(chan bool, 1)
	go func() {
		if !waitRedirected(orig) {
			os.Stdout.WriteString("MISSED-WINDOW\n")
			os.Exit(3)
		}
		switch mode {
		case "panic":
			panic("gobpf-panic-marker")
		case "log":
			log.Print("gobpf-log-marker from another goroutine")
			logged <- true
		}
	}()
	// A program clang takes a while to reject.
	var src strings.Builder
	for i := 0; i < 300; i++ {
		src.WriteString("static int gobpf_f" + itoa(i) + "(int x) { return x * 3 + 1; }\n")
	}
	src.WriteString("int broken(void *ctx) { return gobpf_undeclared_marker; }\n")
	_, err := NewModuleWithError(src.String(), nil)
	var ce *CompileError
	if errors.As(err, &ce) && strings.Contains(ce.Diagnostics, "gobpf_undeclared_marker") {
		os.Stdout.WriteString("COMPILE-ERROR-HOLDS-DIAGNOSTICS\n")
	}
	if mode == "log" {
		select {
		case <-logged:
		case <-time.After(10 * time.Second):
		}
	}
	os.Exit(0)
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestCompileStderrReachesOriginal checks that while a compile captures
// fd 2, other goroutines' output and a crash's message still reach the
// process's stderr, and clang's diagnostics still reach CompileError.
func TestCompileStderrReachesOriginal(t *testing.T) {
	if mode := os.Getenv(stderrChildEnv); mode != "" {
		stderrChild(mode)
		return
	}
	run := func(mode string) (stdout, stderr string, code int) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCompileStderrReachesOriginal$", "-test.count=1")
		cmd.Env = append(os.Environ(), stderrChildEnv+"="+mode)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(so.String(), "MISSED-WINDOW") {
			t.Fatalf("%s child: the goroutine did not see the compile's redirection", mode)
		}
		return so.String(), se.String(), code
	}
	t.Run("Panic", func(t *testing.T) {
		_, stderr, code := run("panic")
		if code != 2 {
			t.Errorf("child exit status %d, want 2 (a panic)", code)
		}
		for _, want := range []string{"panic: gobpf-panic-marker", "goroutine ", "stderr_test.go"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("child's stderr lacks %q:\n%s", want, stderr)
			}
		}
	})
	t.Run("Log", func(t *testing.T) {
		stdout, stderr, code := run("log")
		if code != 0 {
			t.Errorf("child exit status %d, want 0\nstderr:\n%s", code, stderr)
		}
		if !strings.Contains(stderr, "gobpf-log-marker from another goroutine") {
			t.Errorf("another goroutine's log line did not reach stderr:\n%s", stderr)
		}
		if !strings.Contains(stdout, "COMPILE-ERROR-HOLDS-DIAGNOSTICS") {
			t.Errorf("CompileError lacks clang's diagnostics (child stdout %q)", stdout)
		}
		// clang's diagnostics are passed on to stderr as well.
		if !strings.Contains(stderr, "gobpf_undeclared_marker") {
			t.Errorf("clang's diagnostics did not reach stderr:\n%.2000s", stderr)
		}
	})
}
