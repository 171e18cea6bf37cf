// Package cputime measures the CPU time of code, for the tests that bound how work grows with
// the input (the calling thread's CPU clock) and for the benchmarks' cpu-ns/op (the process's,
// garbage collection included): neither counts the time other processes hold the CPU, which on
// a shared machine (or beside the other test packages) dwarfs what is measured.
package cputime

import (
	"runtime"
	"slices"
	"time"
)

// PerOp is the median CPU time of f over five runs of at least 2 ms each (or of one call, when
// that alone takes 100 ms). The goroutine stays on its thread while it measures.
func PerOp(f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const runs, minRun, tooSlow = 5, 2 * time.Millisecond, 100 * time.Millisecond
	start := Thread()
	f() // warms the buffers, and spares a runaway case the repeats: it fails anyway
	if d := Thread() - start; d > tooSlow {
		return d
	}
	n := 1
	for {
		start := Thread()
		for i := 0; i < n; i++ {
			f()
		}
		if d := Thread() - start; d >= minRun {
			break
		} else if d <= 0 {
			n *= 16
		} else {
			n = max(n*2, int(float64(n)*float64(minRun)/float64(d)*1.2))
		}
	}
	samples := make([]time.Duration, runs)
	for k := range samples {
		start := Thread()
		for i := 0; i < n; i++ {
			f()
		}
		samples[k] = (Thread() - start) / time.Duration(n)
	}
	slices.Sort(samples)
	return samples[runs/2]
}
