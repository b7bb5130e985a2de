//go:build !unix

package testutil

import "testing"

// ReportCPU reports nothing where getrusage is missing; see cpu.go.
func ReportCPU(b *testing.B) func() { return func() {} }
