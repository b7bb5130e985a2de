package events

import "github.com/taskql/server/model"

// Local is the bus of a single instance: changes go from the store to the
// subscribers of this process once their statement commits. It is meant
// for SQLite, whose writers take turns (model.SerialWriter), so changes
// arrive in commit order; instances sharing a PostgreSQL database need
// postgres.Bus instead.
//
// The zero Local is ready to use.
type Local struct {
	Hub
}

var _ Bus = (*Local)(nil)

// Writer returns a model.SerialWriter that publishes to l.
func (l *Local) Writer() model.Writer { return model.NewSerialWriter(l) }

// Publish delivers committed changes to this process's subscribers.
func (l *Local) Publish(changes []*model.TaskChange) { l.Deliver(changes) }
