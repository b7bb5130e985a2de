//go:build race

package testutil

// Race reports whether the race detector is on: it multiplies CPU time by
// five to ten, so bounds on CPU scale with it.
const Race = true
