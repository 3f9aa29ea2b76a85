package testutil

import (
	"time"

	"golang.org/x/sys/unix"
)

// CPUTime is the user plus system CPU time of who: unix.RUSAGE_SELF (the
// process), RUSAGE_THREAD (the calling thread) or RUSAGE_CHILDREN.
func CPUTime(who int) time.Duration {
	var ru unix.Rusage
	unix.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
