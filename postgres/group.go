package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/taskql/server/model"
)

// Grouping of concurrent creates into one statement.
const (
	// maxGroup bounds the tasks one statement inserts.
	maxGroup = 128
	// maxGroupsInFlight bounds the statements running at once; requests
	// that arrive meanwhile wait for the next one.
	maxGroupsInFlight = 4
	// groupTimeout bounds a statement, which runs apart from any one
	// request: each caller still stops waiting at its own deadline.
	groupTimeout = 30 * time.Second
)

// createGroups inserts the tasks of concurrent createTask calls (items of
// type T: a model.Create, a title in the tests) with one statement, where
// each would otherwise commit alone. PostgreSQL sends a
// transaction's notifications while it holds a database-wide lock across
// the commit's flush to disk, so committing transactions that notify take
// turns: on the benchmark machine, pgbench's INSERT with a pg_notify
// peaked at 4,500 per second against 16,900 without (bench/README.md).
// Grouped, the rows, their notifications and the commit are shared, and
// each task still becomes visible, and is published, exactly when its
// statement commits, in commit order.
//
// Nobody waits for a group to fill: the first caller runs its statement at
// once, and whoever arrives while maxGroupsInFlight statements run joins
// the next one. Under light load every statement holds one task.
type createGroups[T any] struct {
	mu       sync.Mutex
	pending  []*pendingCreate[T]
	inFlight int
}

// pendingCreate is one createTask call waiting for its statement.
type pendingCreate[T any] struct {
	ctx  context.Context
	item T

	done chan struct{} // closed when task or err is set
	task *model.Task
	err  error
}

// insertFunc runs the statement of a group, whose items it is given in
// order, and returns their tasks in the same order.
type insertFunc[T any] func(ctx context.Context, items []T) ([]*model.Task, error)

// create adds item, the create of the caller whose context is ctx, to the
// next statement and waits for its outcome.
func (g *createGroups[T]) create(ctx context.Context, item T, insert insertFunc[T]) (*model.Task, error) {
	p := &pendingCreate[T]{ctx: ctx, item: item, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, p)
	lead := g.inFlight < maxGroupsInFlight
	if lead {
		g.inFlight++
	}
	g.mu.Unlock()
	if lead {
		g.lead(p, insert)
	}
	select {
	case <-p.done:
		return p.task, p.err
	case <-p.ctx.Done():
		return nil, p.ctx.Err()
	}
}

// lead runs statements for the pending creates until none is left. A
// caller (own not nil) leads only until its own create has run, then
// hands what is still pending to a goroutine, so that it never serves
// others after its own answer is ready.
func (g *createGroups[T]) lead(own *pendingCreate[T], insert insertFunc[T]) {
	for {
		group := g.take()
		if group == nil {
			return
		}
		g.run(group, insert)
		if own == nil {
			continue
		}
		select {
		case <-own.done:
			g.mu.Lock()
			more := len(g.pending) > 0
			if !more {
				g.inFlight--
			}
			g.mu.Unlock()
			if more {
				go g.lead(nil, insert)
			}
			return
		default:
		}
	}
}

// take removes up to maxGroup pending creates whose callers still wait,
// or, when none is left, ends the caller's turn and returns nil.
func (g *createGroups[T]) take() []*pendingCreate[T] {
	g.mu.Lock()
	defer g.mu.Unlock()
	var group []*pendingCreate[T]
	for len(g.pending) > 0 && len(group) < maxGroup {
		p := g.pending[0]
		g.pending[0] = nil
		g.pending = g.pending[1:]
		if err := p.ctx.Err(); err != nil {
			p.err = err
			close(p.done)
			continue
		}
		group = append(group, p)
	}
	if len(group) == 0 {
		g.inFlight--
	}
	return group
}

// run inserts group with one statement and hands each caller its task, in
// the group's order. The statement is cancelled once every caller has
// stopped waiting (their requests timed out or went away), as a caller's
// own statement would be, so that a stalled database does not keep
// connections busy for nobody.
func (g *createGroups[T]) run(group []*pendingCreate[T], insert insertFunc[T]) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(group[0].ctx), groupTimeout)
	defer cancel()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		for _, p := range group {
			select {
			case <-p.ctx.Done():
			case <-finished:
				return
			}
		}
		cancel()
	}()
	items := make([]T, len(group))
	for i, p := range group {
		items[i] = p.item
	}
	tasks, err := insert(ctx, items)
	if err == nil && len(tasks) != len(group) {
		err = fmt.Errorf("inserted %d tasks for %d creates", len(tasks), len(group))
	}
	for i, p := range group {
		if err != nil {
			p.err = err
		} else {
			p.task = tasks[i]
		}
		close(p.done)
	}
}
