// The thread's CPU clock is read by a Linux system call: apart, with a fallback elsewhere.

//go:build linux

package cputime

import (
	"syscall"
	"time"
	"unsafe"
)

// Thread is the CPU time of the calling thread; the caller locks its goroutine to the thread.
func Thread() time.Duration {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return time.Duration(time.Now().UnixNano())
	}
	return time.Duration(ts.Nano())
}
