package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/taskql/server/database"
	"github.com/taskql/server/model"
)

// taskColumns are the columns seeded rows fill, every column of
// model.Task but id, which is the database's; row.values holds a row's
// values in this order (seed_test.go pins both to the model).
var taskColumns = []string{"user_id", "title", "description", "completed", "created_at", "updated_at"}

// values are r's values for taskColumns, in their order.
func (r row) values() []any {
	return []any{r.userID, r.title, r.description, r.completed, r.createdAt, r.updatedAt}
}

// schemaURL is base with its search_path set to schema, so that the server
// and the baselines see the benchmark's task table and no other.
func schemaURL(base, schema string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// pgStore is the benchmark's schema on the PostgreSQL it was given.
type pgStore struct {
	base   string // the URL given, without a search_path of ours
	schema string
	url    string // base with search_path = schema
}

// resetPG drops and recreates schema (and only it), then creates the task
// table through the model, exactly as the server does at boot.
func resetPG(ctx context.Context, base, schema string) (*pgStore, error) {
	u, err := schemaURL(base, schema)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident+" CASCADE"); err != nil {
		return nil, fmt.Errorf("drop schema %s: %w", schema, err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
		return nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	s := &pgStore{base: base, schema: schema, url: u}
	if err := s.withModel(ctx, func(db *bun.DB) error { return model.CreateSchema(ctx, db) }); err != nil {
		return nil, err
	}
	return s, nil
}

// drop removes the schema.
func (s *pgStore) drop(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.base)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s.schema}.Sanitize()+" CASCADE")
	return err
}

func (s *pgStore) withModel(ctx context.Context, fn func(*bun.DB) error) error {
	db, err := database.Open(ctx, database.Config{URL: s.url, MaxOpenConns: 2})
	if err != nil {
		return fmt.Errorf("open %s: %w", s.schema, err)
	}
	defer db.Close()
	return fn(db)
}

// load appends rows with COPY. With bulk set, the secondary indexes are
// dropped first and rebuilt by the model afterwards, which is several times
// faster than maintaining them row by row. The table is vacuumed and
// analysed at the end, as it would be on a server that has been running.
func (s *pgStore) load(ctx context.Context, rows []row, bulk bool) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var indexes []string
	if bulk {
		err := func() error {
			r, err := conn.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'task' AND indexname LIKE 'ix\_%'`, s.schema)
			if err != nil {
				return err
			}
			indexes, err = pgx.CollectRows(r, pgx.RowTo[string])
			return err
		}()
		if err != nil {
			return fmt.Errorf("list indexes: %w", err)
		}
		for _, ix := range indexes {
			if _, err := conn.Exec(ctx, "DROP INDEX "+pgx.Identifier{ix}.Sanitize()); err != nil {
				return fmt.Errorf("drop index %s: %w", ix, err)
			}
		}
	}
	i := 0
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"task"}, taskColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(rows) {
			return nil, nil
		}
		r := rows[i]
		i++
		return r.values(), nil
	}))
	if err != nil {
		return fmt.Errorf("copy tasks: %w", err)
	}
	if len(indexes) > 0 {
		if err := s.withModel(ctx, func(db *bun.DB) error { return model.CreateSchema(ctx, db) }); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE task"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

// deleteUser removes every task of uid and vacuums, so that a later phase
// sees the table the earlier one saw.
func (s *pgStore) deleteUser(ctx context.Context, uid string) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DELETE FROM task WHERE user_id = $1", uid); err != nil {
		return fmt.Errorf("delete tasks of %s: %w", uid, err)
	}
	_, err = conn.Exec(ctx, "VACUUM ANALYZE task")
	return err
}

// count returns the rows in the task table.
func (s *pgStore) count(ctx context.Context) (int, error) {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return 0, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM task").Scan(&n)
	return n, err
}

// seedRows makes users × perUser tasks, users numbered from first.
func seedRows(t *texts, first, users, perUser int, now time.Time) []row {
	rows := make([]row, 0, users*perUser)
	for u := first; u < first+users; u++ {
		rows = append(rows, t.rowsFor(userID(u), perUser, now)...)
	}
	return rows
}

// sqliteStore is the benchmark's SQLite file.
type sqliteStore struct {
	path string
	url  string
}

// newSQLite creates a fresh SQLite file at path with the task table, and
// loads rows into it in one transaction with a prepared statement, the
// fastest way into SQLite short of its own import tools.
func newSQLite(ctx context.Context, path string, rows []row) (*sqliteStore, error) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("remove old SQLite file: %w", err)
		}
	}
	s := &sqliteStore{path: path, url: "sqlite://" + path}
	db, err := database.Open(ctx, database.Config{URL: s.url, MaxOpenConns: 1})
	if err != nil {
		return nil, fmt.Errorf("open SQLite: %w", err)
	}
	defer db.Close()
	if err := model.CreateSchema(ctx, db); err != nil {
		return nil, err
	}
	var indexes []string
	if err := db.NewRaw(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'task' AND name LIKE 'ix\_%' ESCAPE '\'`).Scan(ctx, &indexes); err != nil {
		return nil, fmt.Errorf("list SQLite indexes: %w", err)
	}
	for _, ix := range indexes {
		if _, err := db.ExecContext(ctx, "DROP INDEX "+ix); err != nil {
			return nil, fmt.Errorf("drop index %s: %w", ix, err)
		}
	}
	// The layout the model stores times in on SQLite (text that sorts as
	// time sorts).
	const layout = "2006-01-02T15:04:05.000Z"
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(taskColumns)), ", ")
		stmt, err := tx.PrepareContext(ctx, "INSERT INTO task ("+strings.Join(taskColumns, ", ")+") VALUES ("+marks+")")
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range rows {
			args := r.values()
			for i, v := range args {
				switch v := v.(type) {
				case *string:
					var s sql.NullString
					if v != nil {
						s = sql.NullString{String: *v, Valid: true}
					}
					args[i] = s
				case time.Time:
					args[i] = v.UTC().Format(layout)
				}
			}
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load SQLite: %w", err)
	}
	if err := model.CreateSchema(ctx, db); err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		return nil, fmt.Errorf("analyze SQLite: %w", err)
	}
	return s, nil
}

// maxID returns the highest task id, which marks the end of the seed.
func maxID(ctx context.Context, dbURL string) (int64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var id int64
	err = conn.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM task").Scan(&id)
	return id, err
}

// trimAbove deletes the tasks with ids above id (what a write scenario
// added) and vacuums.
func (s *pgStore) trimAbove(ctx context.Context, id int64) error {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DELETE FROM task WHERE id > $1", id); err != nil {
		return fmt.Errorf("trim written tasks: %w", err)
	}
	_, err = conn.Exec(ctx, "VACUUM ANALYZE task")
	return err
}
