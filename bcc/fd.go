package bcc

import "golang.org/x/sys/unix"

func closeFd(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}
