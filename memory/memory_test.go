package memory

import "testing"

func TestReleaseWhenIdleReleasesOnceAfterEachBusyPeriod(t *testing.T) {
	tests := []struct {
		name string
		// allocated per interval, in bytes
		intervals []uint64
		// releases after each interval
		want []int
	}{
		{"idle from the start releases once", []uint64{0, 0, 0}, []int{1, 1, 1}},
		{"busy then idle releases after the first idle interval", []uint64{0, 5 << 20, 8 << 20, 100, 0}, []int{1, 1, 1, 2, 2}},
		{"each busy period is followed by one release", []uint64{0, 2 << 20, 0, 0, 3 << 20, 0}, []int{1, 1, 2, 2, 2, 3}},
		{"a trickle below the threshold counts as idle", []uint64{0, idleBytes - 1, idleBytes - 1}, []int{1, 1, 1}},
		{"an interval at the threshold is busy", []uint64{0, idleBytes, 0}, []int{1, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var total uint64
			releases := 0
			r := &releaser{allocated: func() uint64 { return total }, release: func() { releases++ }}
			for i, n := range tt.intervals {
				total += n
				r.step()
				if releases != tt.want[i] {
					t.Fatalf("after interval %d (%d bytes): %d releases, want %d", i, n, releases, tt.want[i])
				}
			}
		})
	}
}

func TestAllocatedBytesGrowsWithAllocation(t *testing.T) {
	before := allocatedBytes()
	sink := make([][]byte, 0, 64)
	for range 64 {
		sink = append(sink, make([]byte, 64<<10))
	}
	if after := allocatedBytes(); after-before < 4<<20 {
		t.Fatalf("allocated %d bytes after 4 MiB of allocations", after-before)
	}
	_ = sink
}
