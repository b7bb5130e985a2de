//go:build unix

package testutil

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// processCPU returns the CPU time, user and system, this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportCPU starts measuring the CPU time this process uses and returns a
// function that reports it per iteration as the metric cpu-ns/op. Call it
// right before the benchmark's loop and the function right after.
//
// On a shared machine, wall time per operation moves with everyone else's
// load, and it includes waiting for the database; the CPU the process
// itself spends, which is the server's cost of a request, moves much less,
// so it is the figure to compare across changes.
func ReportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// Cost is what a piece of work cost this process: CPU time, user and
// system, and bytes allocated on the heap.
type Cost struct {
	CPU   time.Duration
	Bytes uint64
}

// Measure runs f and returns what it cost the process. Other goroutines'
// work is counted too: measure where nothing else runs (a test that is not
// parallel runs while parallel ones wait).
func Measure(f func()) Cost {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := processCPU()
	f()
	cpu := processCPU() - start
	runtime.ReadMemStats(&after)
	return Cost{CPU: cpu, Bytes: after.TotalAlloc - before.TotalAlloc}
}
