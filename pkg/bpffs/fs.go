// Package bpffs checks for and mounts the BPF filesystem (bpffs), where BPF
// maps and programs are pinned.
package bpffs

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// BPFFSPath is the conventional mount point of the BPF filesystem.
const BPFFSPath = "/sys/fs/bpf"

// FsMagicBPFFS is BPF_FS_MAGIC, the f_type statfs(2) reports for a bpffs.
// (The constant does not fit an int32, hence the explicit value.)
var FsMagicBPFFS int32 = int32(-0x3501b5ef) // 0xcafe4a11

// IsMountedAt reports whether path lies on a BPF filesystem, that is, whether
// a bpffs is mounted at path or at one of its parents. It returns an error
// when path cannot be examined (for example, because it does not exist).
func IsMountedAt(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("bpffs: %w", &os.PathError{Op: "statfs", Path: path, Err: err})
	}
	return uint32(st.Type) == unix.BPF_FS_MAGIC, nil
}

// IsMounted reports whether a BPF filesystem is mounted at BPFFSPath.
func IsMounted() (bool, error) {
	return IsMountedAt(BPFFSPath)
}

// MountAt mounts a BPF filesystem at path, creating the directory (mode
// 0755, with missing parents) if needed. It does nothing when path already
// lies on a BPF filesystem, so calling it twice mounts once.
func MountAt(path string) error {
	mounted, err := IsMountedAt(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return fmt.Errorf("bpffs: %w", err)
		}
		mounted, err = IsMountedAt(path)
	}
	if err != nil {
		return err
	}
	if mounted {
		return nil
	}
	if err := unix.Mount("bpf", path, "bpf", 0, ""); err != nil {
		return fmt.Errorf("bpffs: mount bpf at %s: %w", path, err)
	}
	return nil
}

// Mount mounts a BPF filesystem at BPFFSPath unless one is already there.
func Mount() error {
	return MountAt(BPFFSPath)
}
