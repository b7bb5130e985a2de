package model

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
)

// Writer carries out the store's mutations: it runs the statement of each
// (a Mutation, which the store builds already restricted to its owners)
// and publishes a change for every task the statement changed, only if it
// commits. How depends on the database: SerialWriter runs each statement
// alone, one at a time, and hands its changes to a Publisher after the
// commit; package postgres notifies within the statement itself and
// inserts concurrent creates together. A writer cannot widen what a
// mutation does: it can only run the mutation's statement, alone or
// inside one of its own (Mutation.Run).
type Writer interface {
	// Write runs m and publishes a change of m.Kind for each task it
	// returns, if it commits; it returns the tasks in id order.
	Write(ctx context.Context, m *Mutation) ([]*Task, error)
	// Create inserts the task of c and publishes its CREATED change. It
	// may insert it with one statement along with other creates (Insert).
	Create(ctx context.Context, c *Create) (*Task, error)
}

// Publisher receives the changes a SerialWriter's mutations committed, in
// commit order. Publish must not block (it runs under the writers' lock)
// and must not mutate the changes or their tasks: the mutation's caller
// and every subscriber share them.
type Publisher interface {
	Publish(changes []*TaskChange)
}

// Mutation is the statement of one mutation of the task table, built by
// the store from owned: its text can only grow around what restricts it
// to its owners, never lose it.
type Mutation struct {
	o    *owned
	kind ChangeKind
	text string
}

// Kind is the kind of change the mutation makes to each task it returns.
func (m *Mutation) Kind() ChangeKind { return m.kind }

// SQL is the mutation's statement, with $N placeholders for its values.
// It returns the changed tasks' columns (TaskColumns).
func (m *Mutation) SQL() string { return m.text }

// Users are the ids of the users whose tasks the mutation changes.
func (m *Mutation) Users() []string { return m.o.users() }

// DB is the store's database, for a writer that runs the mutation in a
// transaction of its own.
func (m *Mutation) DB() *bun.DB { return m.o.s.db }

// Bind adds v to the mutation's values and returns its placeholder, for a
// statement that contains the mutation's.
func (m *Mutation) Bind(v any) string { return string(m.o.b.add(v)) }

// Run sends text, which is the mutation's SQL or a statement containing
// it, with the mutation's values on conn (the store's pool or a
// transaction on it), and returns the tasks it returns in id order: the
// task columns first, then one column per extra destination. It refuses a
// text that does not contain the mutation's own.
func (m *Mutation) Run(ctx context.Context, conn Querier, text string, extra ...any) ([]*Task, error) {
	if !strings.Contains(text, m.text) {
		return nil, errors.New("run a mutation: the statement does not contain the mutation's own")
	}
	rows, err := m.o.send(ctx, conn, text)
	if err != nil {
		return nil, err
	}
	tasks, err := scanTasks(rows, 1, extra...)
	sortByID(tasks)
	return tasks, err
}

// Create is one createTask call's task, validated and owned by the call's
// viewer; only the store makes one (Tasks.Create).
type Create struct {
	s         *Tasks
	user      string
	title     string
	desc      *string
	completed bool
}

// Insert returns the mutation that inserts the tasks of creates, which
// must come from one store: a row each, in their order (their ids are
// drawn in it), each owned by the viewer of its own call.
func Insert(creates []*Create) (*Mutation, error) {
	if len(creates) == 0 {
		return nil, errors.New("insert tasks: no task to insert")
	}
	s := creates[0].s
	for _, c := range creates {
		if c.s != s {
			return nil, errors.New("insert tasks: the creates come from different stores")
		}
	}
	o := s.ownedByCreates(creates)
	text, err := o.text(o.insert(creates))
	if err != nil {
		return nil, err
	}
	return &Mutation{o: o, kind: ChangeCreated, text: text}, nil
}

// SerialWriter is the Writer for a database that admits one writer at a
// time (SQLite): each mutation is one statement that commits alone, and
// writers take turns on a lock held across the statement and the
// publication of its changes, so that changes reach the Publisher in
// commit order. That costs no concurrency SQLite had, and writers wait in
// a fair queue that respects their contexts instead of in SQLite's busy
// handler, which fails with "database is locked" once its timeout passes.
type SerialWriter struct {
	publisher Publisher
	turn      chan struct{}
}

var _ Writer = (*SerialWriter)(nil)

// NewSerialWriter returns a SerialWriter that publishes to p; nil
// publishes nothing.
func NewSerialWriter(p Publisher) *SerialWriter {
	return &SerialWriter{publisher: p, turn: make(chan struct{}, 1)}
}

// Write implements Writer.
func (w *SerialWriter) Write(ctx context.Context, m *Mutation) ([]*Task, error) {
	select {
	case w.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the writer lock: %w", ctx.Err())
	}
	defer func() { <-w.turn }()
	tasks, err := m.Run(ctx, m.DB().DB, m.SQL())
	if err != nil {
		return nil, err
	}
	if w.publisher != nil && len(tasks) > 0 {
		w.publisher.Publish(Changes(m.Kind(), tasks))
	}
	return tasks, nil
}

// Create implements Writer: one statement per create.
func (w *SerialWriter) Create(ctx context.Context, c *Create) (*Task, error) {
	m, err := Insert([]*Create{c})
	if err != nil {
		return nil, err
	}
	tasks, err := w.Write(ctx, m)
	if err != nil {
		return nil, err
	}
	if len(tasks) != 1 {
		return nil, fmt.Errorf("inserted %d tasks for one create", len(tasks))
	}
	return tasks[0], nil
}
