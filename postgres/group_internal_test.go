package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskql/server/model"
)

// fakeInserts stands in for the statement of a group: it records each
// group's titles and answers at once, or when gate is set, once gate is
// closed.
type fakeInserts struct {
	mu      sync.Mutex
	groups  [][]string
	started int // statements that have begun
	gate    chan struct{}
	err     error
	short   bool // return one task too few
}

func (f *fakeInserts) insert(ctx context.Context, group []string) ([]*model.Task, error) {
	f.mu.Lock()
	f.started++
	f.mu.Unlock()
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	f.groups = append(f.groups, group)
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	tasks := make([]*model.Task, len(group))
	for i, title := range group {
		tasks[i] = &model.Task{ID: int64(i + 1), UserID: "u", Title: title}
	}
	if f.short {
		tasks = tasks[1:]
	}
	return tasks, nil
}

func (f *fakeInserts) sizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n []int
	for _, g := range f.groups {
		n = append(n, len(g))
	}
	return n
}

type createResult struct {
	task *model.Task
	err  error
}

// startCreates starts n creates with titles prefix0…, each in its own
// goroutine, and returns their results in title order.
func startCreates(ctx context.Context, g *createGroups[string], f *fakeInserts, prefix string, n int) []chan createResult {
	out := make([]chan createResult, n)
	for i := range n {
		out[i] = make(chan createResult, 1)
		go func() {
			t, err := g.create(ctx, fmt.Sprintf("%s%d", prefix, i), f.insert)
			out[i] <- createResult{t, err}
		}()
	}
	return out
}

// waitFor waits until cond, which reads under mu, holds.
func waitFor(t *testing.T, what string, mu *sync.Mutex, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		ok := cond()
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// blockStatements starts maxGroupsInFlight creates, which lead, and waits
// until each waits in its statement at f's gate: creates started after
// that queue.
func blockStatements(t *testing.T, g *createGroups[string], f *fakeInserts) []chan createResult {
	t.Helper()
	f.gate = make(chan struct{})
	var first []chan createResult
	// One at a time, so that each leads a statement of its own.
	for i := range maxGroupsInFlight {
		first = append(first, startCreates(context.Background(), g, f, fmt.Sprintf("first%d-", i), 1)...)
		waitFor(t, "the first statements", &f.mu, func() bool { return f.started == i+1 })
	}
	return first
}

// waitPending waits until n creates are queued behind running statements.
func waitPending(t *testing.T, g *createGroups[string], n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d pending creates", n), &g.mu, func() bool { return len(g.pending) == n })
}

func TestALoneCreateRunsAtOnceInAGroupOfOne(t *testing.T) {
	var g createGroups[string]
	f := &fakeInserts{}
	for i := range 3 {
		task, err := g.create(context.Background(), fmt.Sprint(i), f.insert)
		if err != nil || task.Title != fmt.Sprint(i) {
			t.Fatalf("create %d: %+v, %v", i, task, err)
		}
	}
	if got := fmt.Sprint(f.sizes()); got != "[1 1 1]" {
		t.Fatalf("group sizes %s, want [1 1 1]", got)
	}
	if n := g.inFlightNow(); n != 0 {
		t.Fatalf("%d statements still counted in flight", n)
	}
}

func TestCreatesArrivingWhileStatementsRunShareTheNextOnes(t *testing.T) {
	tests := []struct {
		name    string
		waiting int
		want    []int // sizes of the groups besides the first creates' own
	}{
		{"a few share one statement", 10, []int{10}},
		{"a group holds at most maxGroup", maxGroup + 5, []int{5, maxGroup}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g createGroups[string]
			f := &fakeInserts{}
			first := blockStatements(t, &g, f)
			rest := startCreates(context.Background(), &g, f, "rest", tt.waiting)
			waitPending(t, &g, tt.waiting)
			close(f.gate)
			for i, c := range append(first, rest...) {
				r := <-c
				if r.err != nil {
					t.Fatalf("create %d: %v", i, r.err)
				}
			}
			// The first creates' statements and the next ones may record
			// in any order.
			sizes := f.sizes()
			slices.Sort(sizes)
			want := slices.Sorted(slices.Values(append(slices.Repeat([]int{1}, maxGroupsInFlight), tt.want...)))
			if !slices.Equal(sizes, want) {
				t.Fatalf("group sizes %v, want %v", sizes, want)
			}
		})
	}
}

func TestEachCreateGetsItsOwnTaskFromItsGroup(t *testing.T) {
	var g createGroups[string]
	f := &fakeInserts{}
	first := blockStatements(t, &g, f)
	rest := startCreates(context.Background(), &g, f, "rest", 50)
	waitPending(t, &g, 50)
	close(f.gate)
	for format, results := range map[string][]chan createResult{"first%d-0": first, "rest%d": rest} {
		for i, c := range results {
			r := <-c
			if want := fmt.Sprintf(format, i); r.err != nil || r.task.Title != want {
				t.Fatalf("create %s: got %+v, %v", want, r.task, r.err)
			}
		}
	}
}

func TestAFailedStatementFailsEveryCreateOfItsGroup(t *testing.T) {
	for _, f := range []*fakeInserts{
		{err: errors.New("database is down")},
		{short: true},
	} {
		var g createGroups[string]
		first := blockStatements(t, &g, f)
		rest := startCreates(context.Background(), &g, f, "rest", 5)
		waitPending(t, &g, 5)
		close(f.gate)
		for i, c := range append(first, rest...) {
			if r := <-c; r.err == nil {
				t.Fatalf("create %d of a failed statement (err %v, short %v) succeeded: %+v", i, f.err, f.short, r.task)
			}
		}
	}
}

func TestACreateWhoseContextEndsWhileQueuedIsLeftOut(t *testing.T) {
	var g createGroups[string]
	f := &fakeInserts{}
	first := blockStatements(t, &g, f)
	ctx, cancel := context.WithCancel(context.Background())
	gone := startCreates(ctx, &g, f, "gone", 3)
	kept := startCreates(context.Background(), &g, f, "kept", 2)
	waitPending(t, &g, 5)
	cancel()
	for i, c := range gone {
		if r := <-c; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled create %d: %+v, %v; want context.Canceled", i, r.task, r.err)
		}
	}
	close(f.gate)
	for _, c := range append(first, kept...) {
		if r := <-c; r.err != nil {
			t.Fatal(r.err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, group := range f.groups {
		for _, title := range group {
			if title[:4] == "gone" {
				t.Fatalf("cancelled create %s was inserted", title)
			}
		}
	}
}

func (g *createGroups[T]) inFlightNow() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight
}

func TestAGroupsStatementIsCancelledOnlyWhenAllItsCallersHaveGone(t *testing.T) {
	var g createGroups[string]
	started := make(chan context.Context, maxGroupsInFlight+1)
	releaseFirst, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	// The first statements wait for releaseFirst; the group of "t"
	// creates waits for release or its context's end.
	insert := func(ctx context.Context, group []string) ([]*model.Task, error) {
		started <- ctx
		wait := release
		if group[0] == "first" {
			wait = releaseFirst
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait:
		}
		return make([]*model.Task, len(group)), nil
	}
	results := make(chan error, maxGroupsInFlight+2)
	start := func(ctx context.Context, title string) {
		go func() {
			_, err := g.create(ctx, title, insert)
			results <- err
		}()
	}
	for range maxGroupsInFlight {
		start(context.Background(), "first")
		<-started
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	// A first: a statement that followed only its first caller would end
	// with A.
	start(ctxA, "t")
	waitPending(t, &g, 1)
	start(ctxB, "t")
	waitPending(t, &g, 2)
	close(releaseFirst)
	for range maxGroupsInFlight {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	stmt := <-started

	cancelA()
	if err := <-results; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled caller got %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := stmt.Err(); err != nil {
		t.Fatalf("the statement was cancelled (%v) while a caller still waited", err)
	}
	cancelB()
	<-results
	select {
	case <-stmt.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the statement was not cancelled after every caller had gone")
	}
}
