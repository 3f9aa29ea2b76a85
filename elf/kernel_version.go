package elf

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

var versionRegex = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?`)

// KernelVersionFromReleaseString converts a release string such as
// "4.4.2-1" into LINUX_VERSION_CODE format: a<<16 + b<<8 + c (c capped at 255).
func KernelVersionFromReleaseString(releaseString string) (uint32, error) {
	parts := versionRegex.FindStringSubmatch(releaseString)
	if parts == nil {
		return 0, fmt.Errorf("got invalid release version %q (expected format '4.3.2-1')", releaseString)
	}
	var v [3]int
	for i := 0; i < 3; i++ {
		if parts[i+1] == "" {
			continue
		}
		n, err := strconv.Atoi(parts[i+1])
		if err != nil {
			return 0, fmt.Errorf("got invalid release version %q: %w", releaseString, err)
		}
		v[i] = n
	}
	if v[2] > 255 {
		v[2] = 255
	}
	if v[1] > 255 {
		v[1] = 255
	}
	return uint32(v[0]<<16 + v[1]<<8 + v[2]), nil
}

var debianVersionRegex = regexp.MustCompile(`.* SMP Debian (\d+\.\d+.\d+-\d+)(?:\+[[:alnum:]]*)?.*`)

func currentVersionUbuntu() (uint32, error) {
	b, err := os.ReadFile("/proc/version_signature")
	if err != nil {
		return 0, err
	}
	var u1, u2, rel string
	if _, err := fmt.Sscanf(string(b), "%s %s %s", &u1, &u2, &rel); err != nil {
		return 0, err
	}
	return KernelVersionFromReleaseString(rel)
}

func currentVersionDebian() (uint32, error) {
	b, err := os.ReadFile("/proc/version")
	if err != nil {
		return 0, err
	}
	m := debianVersionRegex.FindStringSubmatch(string(b))
	if len(m) != 2 {
		return 0, fmt.Errorf("failed to get kernel version from /proc/version: %s", b)
	}
	return KernelVersionFromReleaseString(m[1])
}

func currentVersionUname() (uint32, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return 0, err
	}
	return KernelVersionFromReleaseString(strings.TrimRight(string(u.Release[:]), "\x00"))
}

// CurrentKernelVersion returns the running kernel's version in
// LINUX_VERSION_CODE format, with the distribution fixups gobpf applies
// (Ubuntu's /proc/version_signature, Debian's /proc/version).
func CurrentKernelVersion() (uint32, error) {
	if v, err := currentVersionUbuntu(); err == nil {
		return v, nil
	}
	if v, err := currentVersionDebian(); err == nil {
		return v, nil
	}
	return currentVersionUname()
}
