package model

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/uptrace/bun"
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

// SlowSubscriberError ends a subscription whose client did not keep up:
// events came faster than it read them, and rather than drop some in
// silence the server closed the subscription. The client should fetch
// its tasks again and resubscribe.
type SlowSubscriberError struct {
	// Behind is how many events were waiting for the client when the
	// subscription was closed.
	Behind int
}

func (e *SlowSubscriberError) Error() string {
	return fmt.Sprintf("subscription closed: client too slow, %d events behind — resubscribe", e.Behind)
}

// mutate runs fn in a transaction and publishes a change of kind for each
// task fn returns, only if the transaction commits.
//
// On SQLite, writers take turns on a Go lock held around the transaction
// and the publication. SQLite admits one writer at a time anyway, so this
// costs no concurrency: writers wait in a fair queue instead of in
// SQLite's busy handler (which fails with "database is locked" once its
// timeout passes), and events leave in commit order.
func (s *Tasks) mutate(ctx context.Context, kind ChangeKind, fn func(context.Context, bun.Tx) ([]*Task, error)) error {
	if s.writer != nil {
		select {
		case s.writer <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("wait for the writer lock: %w", ctx.Err())
		}
		defer func() { <-s.writer }()
	}
	var changes []*TaskChange
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		tasks, err := fn(ctx, tx)
		if err != nil || s.publisher == nil || len(tasks) == 0 {
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
		return err
	}
	if len(changes) > 0 {
		s.publisher.Publish(changes)
	}
	return nil
}
