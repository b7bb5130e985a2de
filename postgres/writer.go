package postgres

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/taskql/server/model"
)

// Writer runs the task store's mutations on PostgreSQL and sends their
// changes with pg_notify on its channel, where Bus hears them: PostgreSQL
// delivers a notification only if its transaction commits, in commit
// order, with no round trip after the commit. NOTIFY works through a
// transaction-mode pooler such as Neon's.
//
// A mutation is one statement that changes the tasks and notifies them
// (WITH t AS (mutation) SELECT t.*, pg_notify(…) FROM t), which commits
// alone, instead of a transaction of four statements. Only a change that
// might not fit one notification (maxStatementChange) takes a transaction,
// in which its payload is split (payload.go). Concurrent creates share a
// statement (createGroups).
type Writer struct {
	channel string
	creates createGroups[*model.Create]
}

var _ model.Writer = (*Writer)(nil)

func newWriter(channel string) *Writer { return &Writer{channel: channel} }

// Write implements model.Writer.
func (w *Writer) Write(ctx context.Context, m *model.Mutation) ([]*model.Task, error) {
	if w.fits(m.Users()) {
		// A volatile function of the select list runs after the sort, so
		// the changes go out in id order.
		text := "WITH t AS (" + m.SQL() + ") SELECT t.*, " + w.notifyExpr(m.Kind(), m.Bind) + " FROM t ORDER BY t.id"
		var notified any
		return m.Run(ctx, m.DB().DB, text, &notified)
	}
	var tasks []*model.Task
	err := m.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if tasks, err = m.Run(ctx, tx.Tx, m.SQL()); err != nil || len(tasks) == 0 {
			return err
		}
		return w.notifyTx(ctx, tx, model.Changes(m.Kind(), tasks))
	})
	if err != nil {
		return nil, err
	}
	return tasks, nil
}

// Create implements model.Writer: the creates that arrive while others
// run share the next statement (createGroups).
func (w *Writer) Create(ctx context.Context, c *model.Create) (*model.Task, error) {
	return w.creates.create(ctx, c, w.insert)
}

// insert runs the statement of a group of creates, whose tasks come back
// in id order, the order the statement drew their ids in: the group's.
func (w *Writer) insert(ctx context.Context, creates []*model.Create) ([]*model.Task, error) {
	m, err := model.Insert(creates)
	if err != nil {
		return nil, err
	}
	return w.Write(ctx, m)
}

// maxStatementChange bounds the payload of a change notified within its
// statement, without its user id: a title and description of the most
// characters the table admits, each escaped as six bytes (a control
// character as \u00XX), and room for the names, id, flag and times. SQL
// cannot split a payload, so a user id that could make one too long
// takes the transaction.
const maxStatementChange = 6*(model.MaxTitleLength+model.MaxDescriptionLength) + 512

// fits reports whether the changes of users' tasks always fit one
// notification.
func (w *Writer) fits(users []string) bool {
	for _, u := range users {
		if maxStatementChange+6*len(u) > MaxPayload {
			return false
		}
	}
	return true
}

// notifyExpr is the pg_notify of a change of kind to the task of the row
// t, encoded by PostgreSQL in the format of encodeChange; bind binds a
// value and returns its placeholder.
func (w *Writer) notifyExpr(kind model.ChangeKind, bind func(any) string) string {
	return "pg_notify(" + bind(w.channel) + ", json_build_object(" +
		"'kind', " + bind(string(kind)) + "::text, " +
		"'task', json_build_object(" +
		"'id', t.id, " +
		"'userId', t.user_id, " +
		"'title', t.title, " +
		"'description', t.description, " +
		"'completed', t.completed, " +
		"'createdAt', t.created_at, " +
		"'updatedAt', t.updated_at))::text)"
}

// notifyTx sends changes with pg_notify in tx, split into chunks where a
// payload is too long for one notification.
func (w *Writer) notifyTx(ctx context.Context, tx bun.Tx, changes []*model.TaskChange) error {
	var payloads []string
	for _, c := range changes {
		payload, err := encodeChange(c)
		if err != nil {
			return err
		}
		payloads = append(payloads, splitPayload(payload, MaxPayload)...)
	}
	// One statement for any number of changes (deleteCompletedTasks may
	// have many), sent in the array's order (the plan is the function scan
	// itself, in ordinality order; a volatile function of the select list
	// is never evaluated before a sort).
	_, err := tx.ExecContext(ctx, "SELECT pg_notify(?, n.p) FROM unnest(?::text[]) WITH ORDINALITY AS n(p, i) ORDER BY n.i",
		w.channel, pgdialect.Array(payloads))
	if err != nil {
		return fmt.Errorf("pg_notify: %w", err)
	}
	return nil
}
