package api

import (
	"fmt"
	"testing"
	"time"
)

// TestCostBudgetRefillsAndForgetsIdleBuckets drives the limiter's
// clock: a spent bucket refills at the rate, and the map of buckets stays
// bounded, forgetting first those idle long enough to be full again.
func TestCostBudgetRefillsAndForgetsIdleBuckets(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newCostBudget(2, 4) // full again after 2 s
	l.now = func() time.Time { return now }
	l.maxBuckets = 10

	if d, left := l.take("alice", 4); d != 0 || left != 0 {
		t.Fatalf("burst: wait %v, %v left; want no wait and none left", d, left)
	}
	if d, _ := l.take("alice", 1); d != 500*time.Millisecond {
		t.Fatalf("after the burst: wait %v, want 500ms (rate 2/s)", d)
	}
	// A refusal takes nothing: after 500ms exactly one token is there.
	now = now.Add(500 * time.Millisecond)
	if d, _ := l.take("alice", 1); d != 0 {
		t.Fatalf("after 500ms: wait %v, want 0", d)
	}
	if d, _ := l.take("alice", 2); d != time.Second {
		t.Fatalf("two more: wait %v, want 1s", d)
	}

	// Nine more users fill the map; alice's bucket is then idle.
	for i := range 9 {
		l.take(fmt.Sprint("user-", i), 1)
	}
	if n := l.size(); n != 10 {
		t.Fatalf("%d buckets, want 10", n)
	}
	now = now.Add(3 * time.Second) // everyone idle past refill
	l.take("newcomer", 1)
	if n := l.size(); n != 1 {
		t.Fatalf("after everyone idled: %d buckets, want only the newcomer's", n)
	}

	// When every bucket is busy, the map still does not grow past its bound.
	for i := range 25 {
		l.take(fmt.Sprint("busy-", i), 1)
		if n := l.size(); n > 10 {
			t.Fatalf("%d buckets, above the bound of 10", n)
		}
	}
}
