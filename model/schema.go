package model

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// schemaLockKey is the PostgreSQL advisory lock that serializes schema
// creation when several instances boot at once: concurrent CREATE TABLE IF
// NOT EXISTS statements can otherwise fail on the catalog's unique indexes.
const schemaLockKey = 7_346_110_201

// The task table and its indexes. Column names and types are the public
// contract, shared with other programs using the same database. The
// composite indexes serve keyset pagination in each sort order.
var (
	postgresSchema = []string{
		`CREATE TABLE IF NOT EXISTS task (
			id serial PRIMARY KEY,
			user_id varchar NOT NULL,
			title varchar(200) NOT NULL,
			description varchar(1000),
			completed boolean NOT NULL DEFAULT false,
			created_at timestamptz NOT NULL DEFAULT now(),
			updated_at timestamptz NOT NULL DEFAULT now()
		)`,
	}
	sqliteSchema = []string{
		`CREATE TABLE IF NOT EXISTS task (
			id integer PRIMARY KEY AUTOINCREMENT,
			user_id varchar NOT NULL,
			title varchar(200) NOT NULL,
			description varchar(1000),
			completed boolean NOT NULL DEFAULT false,
			created_at timestamp NOT NULL DEFAULT (` + sqliteNowExpr + `),
			updated_at timestamp NOT NULL DEFAULT (` + sqliteNowExpr + `)
		)`,
	}
	taskIndexes = []string{
		`CREATE INDEX IF NOT EXISTS ix_task_user_id ON task (user_id)`,
		`CREATE INDEX IF NOT EXISTS ix_task_completed ON task (completed)`,
		`CREATE INDEX IF NOT EXISTS ix_task_user_created ON task (user_id, created_at, id)`,
		`CREATE INDEX IF NOT EXISTS ix_task_user_updated ON task (user_id, updated_at, id)`,
		`CREATE INDEX IF NOT EXISTS ix_task_user_title ON task (user_id, title, id)`,
	}
)

// CreateSchema creates the task table and its indexes if they do not exist.
// It never touches other tables: the user table belongs to the auth service.
func CreateSchema(ctx context.Context, db *bun.DB) error {
	stmts := sqliteSchema
	if db.Dialect().Name() == dialect.PG {
		stmts = postgresSchema
	}
	stmts = append(stmts[:len(stmts):len(stmts)], taskIndexes...)
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if db.Dialect().Name() == dialect.PG {
			// Held until the transaction ends; a transaction-scoped lock
			// also works through a transaction-mode pooler.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", schemaLockKey); err != nil {
				return err
			}
		}
		for _, stmt := range stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create task table: %w", err)
	}
	return nil
}
