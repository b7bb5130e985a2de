package model

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// taskColumns are the task table's columns in the order of Task's fields,
// the order scanTasks reads them in; statements that change tasks return
// them too.
const taskColumns = `id, user_id, title, description, completed, created_at, updated_at`

// scanTasks reads every row of rows, which has taskColumns and then one
// column per extra destination. A page is the hot path of the server:
// Bun's scanning finds a scanner per column by reflection for every row, a
// fifth of the CPU of a page request in the profile (bench/README.md),
// where these typed destinations need none. The tasks share one
// allocation.
func scanTasks(rows *sql.Rows, capacity int, extra ...any) ([]*Task, error) {
	defer rows.Close()
	all := make([]Task, 0, capacity)
	var (
		row  Task
		desc sql.NullString
	)
	dest := append([]any{&row.ID, &row.UserID, &row.Title, &desc, &row.Completed,
		(*columnTime)(&row.CreatedAt), (*columnTime)(&row.UpdatedAt)}, extra...)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row.Description = nil
		if desc.Valid {
			s := desc.String
			row.Description = &s
		}
		all = append(all, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	tasks := make([]*Task, len(all))
	for i := range all {
		tasks[i] = &all[i]
	}
	return tasks, nil
}

// scanPgxTasks is scanTasks for rows read with pgx's own API (see
// owned.readPage): pgx decodes each column straight into its typed
// destination, a NULL description into a nil pointer, and reads
// timestamps in UTC (database.Open), with no driver.Value between.
func scanPgxTasks(rows pgx.Rows, capacity int) ([]*Task, error) {
	defer rows.Close()
	all := make([]Task, 0, capacity)
	var row Task
	dest := []any{&row.ID, &row.UserID, &row.Title, &row.Description, &row.Completed, &row.CreatedAt, &row.UpdatedAt}
	for rows.Next() {
		row.Description = nil
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		all = append(all, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	tasks := make([]*Task, len(all))
	for i := range all {
		tasks[i] = &all[i]
	}
	return tasks, nil
}

// columnTime scans a task's timestamp as Bun does: PostgreSQL's driver
// hands over a time.Time; SQLite's, for a value it does not recognise as a
// time, the RFC 3339 text the table stores.
type columnTime time.Time

func (t *columnTime) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*t = columnTime(v)
		return nil
	case string:
		return t.parse(v)
	case []byte:
		return t.parse(string(v))
	}
	return fmt.Errorf("scan %T into a time", src)
}

func (t *columnTime) parse(s string) error {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("scan %q into a time: %w", s, err)
	}
	*t = columnTime(tm)
	return nil
}
