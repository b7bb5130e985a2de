package model

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// ChangeKind says what happened to a task.
type ChangeKind string

// The kinds of change a mutation publishes: createTask publishes CREATED,
// updateTask and toggleTask UPDATED, deleteTask and deleteCompletedTasks
// one DELETED per task.
const (
	ChangeCreated ChangeKind = "CREATED"
	ChangeUpdated ChangeKind = "UPDATED"
	ChangeDeleted ChangeKind = "DELETED"
)

// Valid reports whether k is one of the three kinds.
func (k ChangeKind) Valid() bool {
	return k == ChangeCreated || k == ChangeUpdated || k == ChangeDeleted
}

// UnmarshalGQL implements graphql.Unmarshaler.
func (k *ChangeKind) UnmarshalGQL(v any) error {
	s, _ := v.(string)
	*k = ChangeKind(s)
	if !k.Valid() {
		return invalid("kind", "%q is not a TaskChangeKind", s)
	}
	return nil
}

// MarshalGQL implements graphql.Marshaler.
func (k ChangeKind) MarshalGQL(w io.Writer) { io.WriteString(w, strconv.Quote(string(k))) }

// TaskChange is one committed change to a task. For DELETED, Task is the
// task as it was before the deletion.
type TaskChange struct {
	Kind ChangeKind
	Task *Task
}

// Publisher carries the changes of the store's mutations to subscribers.
// The store calls PublishTx inside the mutation's transaction, after its
// writes, and Publish once the transaction has committed; a change whose
// transaction rolls back reaches neither Publish nor any subscriber.
// Implementations must not mutate the changes or their tasks: the mutation's
// caller and every subscriber share them.
type Publisher interface {
	// PublishTx makes delivery part of the transaction, for a publisher
	// that can (PostgreSQL's NOTIFY is sent only if, and in the order,
	// its transaction commits). An error rolls the mutation back.
	PublishTx(ctx context.Context, tx bun.Tx, changes []*TaskChange) error
	// Publish is called after commit with the same changes, and must not
	// block. On SQLite the store holds its writer lock meanwhile, so calls
	// come in commit order; on PostgreSQL writers run concurrently and
	// only PublishTx is ordered by commit.
	Publish(changes []*TaskChange)
}

// PublishTo makes the store publish every committed change to p. Call it
// before the store is used; nil (the default) publishes nothing.
func (s *Tasks) PublishTo(p Publisher) {
	s.publisher = p
}

// StatementPublisher is a Publisher that can also make delivery part of
// the statement that changes the tasks, so that a mutation is one
// statement instead of a transaction of several: PostgreSQL sends a
// pg_notify of a statement when, and only if, the statement commits.
type StatementPublisher interface {
	Publisher
	// PublishExpr returns an SQL expression that publishes a change of
	// kind for the task whose columns (id, user_id, title, description,
	// completed, created_at, updated_at) are those of the relation row,
	// binding any value it needs with bind, which returns its placeholder.
	// ok is false when it cannot for a task of this user (its changes may
	// be too long for one statement); PublishTx is used then.
	PublishExpr(kind ChangeKind, userID, row string, bind func(v any) string) (expr string, ok bool)
}

// mutate runs q, a statement built from o that returns the
// changed tasks (taskColumns), and publishes a change of kind for each,
// in id order, only if it commits. It returns the tasks in id order.
//
// With a StatementPublisher the publication is part of the statement,
// which commits alone. Otherwise the statement runs in a transaction
// with the publisher's PublishTx and Publish follows the commit.
//
// On SQLite, writers take turns on a Go lock held around the transaction
// and the publication. SQLite admits one writer at a time anyway, so this
// costs no concurrency: writers wait in a fair queue instead of in
// SQLite's busy handler (which fails with "database is locked" once its
// timeout passes), and events leave in commit order.
func (s *Tasks) mutate(ctx context.Context, kind ChangeKind, o *owned, q schema.QueryAppender) ([]*Task, error) {
	text, err := o.text(q)
	if err != nil {
		return nil, err
	}
	b := &o.b
	run := func(ctx context.Context, conn querier, extra ...any) ([]*Task, error) {
		rows, err := o.send(ctx, conn, text)
		if err != nil {
			return nil, err
		}
		tasks, err := scanTasks(rows, 1, extra...)
		sortByID(tasks)
		return tasks, err
	}
	if p, ok := s.publisher.(StatementPublisher); ok {
		bind := func(v any) string { return string(b.add(v)) }
		if expr, ok := p.PublishExpr(kind, o.longestUser(), "t", bind); ok {
			// A volatile function of the select list runs after the sort,
			// so the changes go out in id order.
			text = "WITH t AS (" + text + ") SELECT t.*, " + expr + " FROM t ORDER BY t.id"
			var published any
			return run(ctx, s.db.DB, &published)
		}
	}
	if s.writer != nil {
		select {
		case s.writer <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the writer lock: %w", ctx.Err())
		}
		defer func() { <-s.writer }()
	}
	if s.publisher == nil {
		return run(ctx, s.db.DB)
	}
	var (
		tasks   []*Task
		changes []*TaskChange
	)
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if tasks, err = run(ctx, tx.Tx); err != nil || len(tasks) == 0 {
			return err
		}
		changes = make([]*TaskChange, len(tasks))
		for i, t := range tasks {
			changes[i] = &TaskChange{Kind: kind, Task: t}
		}
		if err := s.publisher.PublishTx(ctx, tx, changes); err != nil {
			return fmt.Errorf("publish %s: %w", kind, err)
		}
		return nil
	})
	if err != nil {
		// BEGIN, pg_notify or COMMIT may fail after the statement did not.
		b.report(ctx, err)
		return nil, err
	}
	if len(changes) > 0 {
		s.publisher.Publish(changes)
	}
	return tasks, nil
}
