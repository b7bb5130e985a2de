package events

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/taskql/server/model"
)

// Local is the bus of a single instance: changes go from the store to the
// subscribers of this process once their transaction commits. It is meant
// for SQLite, where the store publishes under its writer lock, so changes
// arrive in commit order; instances sharing a PostgreSQL database need
// Postgres instead.
//
// The zero Local is ready to use.
type Local struct {
	Hub
}

var _ Bus = (*Local)(nil)

// PublishTx does nothing: local delivery waits for the commit.
func (*Local) PublishTx(context.Context, bun.Tx, []*model.TaskChange) error { return nil }

// Publish delivers committed changes to this process's subscribers.
func (l *Local) Publish(changes []*model.TaskChange) { l.Deliver(changes) }
