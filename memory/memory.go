// Package memory gives the memory a burst of load left behind back to the
// operating system once the server is idle again.
package memory

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Idle release timing: a server that allocated less than idleBytes in an
// interval is idle.
const (
	interval  = 5 * time.Second
	idleBytes = 1 << 20
)

// ReleaseWhenIdle returns memory to the operating system once after each
// busy period, as soon as an interval passes without load, until ctx ends.
// Without it the heap of the last collection under load stays resident:
// the runtime only gives pages back gradually, and an idle server does not
// collect for two minutes.
func ReleaseWhenIdle(ctx context.Context) {
	r := &releaser{allocated: allocatedBytes, release: release}
	r.step()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.step()
		}
	}
}

// releaser decides, one interval at a time, when to release memory.
type releaser struct {
	allocated func() uint64
	release   func()

	last     uint64
	released bool
}

// step looks at the allocation of the interval that just ended.
func (r *releaser) step() {
	now := r.allocated()
	busy := now-r.last >= idleBytes
	r.last = now
	switch {
	case busy:
		r.released = false
	case !r.released:
		r.release()
		r.released = true
	}
}

// release collects twice before returning free memory: objects in
// sync.Pools (buffers of connections and encoders) survive the first
// collection and are freed by the second.
func release() {
	runtime.GC()
	debug.FreeOSMemory()
}

// allocatedBytes is the total the program has allocated on the heap.
func allocatedBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
