package elf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/pkg/bpffs"
)

const (
	// BPFDirGlobals is the directory of PIN_GLOBAL_NS maps inside their
	// namespace (iproute2's BPF_DIR_GLOBALS).
	BPFDirGlobals = "globals"
	// BPFFSPath is where the BPF filesystem is mounted.
	BPFFSPath = "/sys/fs/bpf/"
)

func validPinPath(p string) bool {
	return strings.HasPrefix(p, BPFFSPath) && filepath.Clean(p) == p
}

func pinObject(fd int, pinPath string) error {
	mounted, err := bpffs.IsMounted()
	if err != nil {
		return fmt.Errorf("elf: checking whether %q is mounted: %w", BPFFSPath, err)
	}
	if !mounted {
		return fmt.Errorf("elf: bpf fs not mounted at %q", BPFFSPath)
	}
	if err := os.MkdirAll(filepath.Dir(pinPath), 0o755); err != nil {
		return fmt.Errorf("elf: creating directory %q: %w", filepath.Dir(pinPath), err)
	}
	if _, err := os.Stat(pinPath); err == nil {
		return fmt.Errorf("elf: aborting, found file at %q", pinPath)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("elf: failed to stat %q: %w", pinPath, err)
	}
	if err := bpfsys.ObjPin(fd, pinPath); err != nil {
		return fmt.Errorf("elf: error pinning object to %q: %w", pinPath, err)
	}
	return nil
}

// PinObjectGlobal pins an object (map or program fd) to a name in a
// namespace, e.g. /sys/fs/bpf/my-namespace/globals/my-name.
func PinObjectGlobal(fd int, namespace, name string) error {
	return pinObject(fd, filepath.Join(BPFFSPath, namespace, BPFDirGlobals, name))
}

// PinObject pins an object (map or program fd) at pinPath, which must lie
// under BPFFSPath.
func PinObject(fd int, pinPath string) error {
	if !validPinPath(pinPath) {
		return fmt.Errorf("elf: not a valid pin path: %s", pinPath)
	}
	return pinObject(fd, pinPath)
}

// GetProgFd returns an fd for the object pinned at pinPath, or -1.
func GetProgFd(pinPath string) int {
	fd, err := bpfsys.ObjGet(pinPath)
	if err != nil {
		return -1
	}
	return fd
}
