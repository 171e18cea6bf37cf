//go:build !linux

package engine

import "time"

// threadCPU falls back to the wall clock where the thread's CPU clock is not at hand.
func threadCPU() time.Duration { return time.Duration(time.Now().UnixNano()) }
