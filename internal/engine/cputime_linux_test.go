//go:build linux

package engine

import (
	"syscall"
	"time"
	"unsafe"
)

// threadCPU is the CPU time of the calling thread: unlike the wall clock, it does not count
// the time other processes hold the CPU, which on a busy machine dwarfs what is measured.
// The caller locks its goroutine to the thread.
func threadCPU() time.Duration {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return time.Duration(time.Now().UnixNano())
	}
	return time.Duration(ts.Nano())
}
