//go:build race

package engine

// raceEnabled: the race detector slows every memory access, unevenly, so timings mean
// nothing under it.
const raceEnabled = true
