// Package cputime measures the CPU time of code, for the tests that bound how work grows with
// the input (the calling thread's CPU clock) and for the benchmarks' cpu-ns/op (the process's,
// garbage collection included): neither counts the time other processes hold the CPU, which on
// a shared machine (or beside the other test packages) dwarfs what is measured.
package cputime

import (
	"runtime"
	"time"
)

// PerOp is PerOps of f alone.
func PerOp(f func()) time.Duration { return PerOps(f)[0] }

// PerOps is the least CPU time per call of each f over seven rounds: each round runs every f
// in turn, long enough (about a millisecond, or one call when that alone takes 100 ms) to read
// the clock. What else the machine does (a sibling hardware thread, caches shared with other
// processes, a slower clock for a while) only adds to a run, and interleaving gives each f
// the machine's good moments as much as its bad ones: two costs compare fairly. The goroutine
// stays on its thread while it measures.
func PerOps(fs ...func()) []time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const rounds, minRun, tooSlow = 7, time.Millisecond, 100 * time.Millisecond
	n := make([]int, len(fs)) // calls per run
	best := make([]time.Duration, len(fs))
	for i, f := range fs {
		start := Thread()
		f() // warms the buffers, and spares a runaway case the repeats: it fails anyway
		if best[i] = Thread() - start; best[i] > tooSlow {
			continue
		}
		n[i] = 1
		for {
			d := run(f, n[i])
			if d >= minRun {
				break
			} else if d <= 0 {
				n[i] *= 16
			} else {
				n[i] = max(n[i]*2, int(float64(n[i])*float64(minRun)/float64(d)*1.2))
			}
		}
	}
	for r := 0; r < rounds; r++ {
		for i, f := range fs {
			if n[i] == 0 {
				continue
			}
			if d := run(f, n[i]) / time.Duration(n[i]); r == 0 || d < best[i] {
				best[i] = d
			}
		}
	}
	return best
}

// run is the CPU time of n calls of f.
func run(f func(), n int) time.Duration {
	start := Thread()
	for i := 0; i < n; i++ {
		f()
	}
	return Thread() - start
}
