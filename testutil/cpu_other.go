//go:build !unix

package testutil

import (
	"runtime"
	"testing"
	"time"
)

// ReportCPU reports nothing where getrusage is missing; see cpu.go.
func ReportCPU(b *testing.B) func() { return func() {} }

// Cost is what a piece of work cost this process; see cpu.go.
type Cost struct {
	CPU   time.Duration
	Bytes uint64
}

// Measure runs f and returns the bytes it allocated; CPU time is not
// measured where getrusage is missing.
func Measure(f func()) Cost {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return Cost{Bytes: after.TotalAlloc - before.TotalAlloc}
}
