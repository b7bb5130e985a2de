package model

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// User is a row of the auth service's user table, which Better Auth creates
// with quoted camelCase columns. This server reads it and never creates or
// alters it.
type User struct {
	bun.BaseModel `bun:"table:user"`

	ID        string    `bun:"id,pk"`
	Name      string    `bun:"name,notnull"`
	Email     string    `bun:"email,notnull,unique"`
	CreatedAt time.Time `bun:"createdAt,nullzero"`
}

// Users reads and writes the user table.
type Users struct {
	db *bun.DB
}

// NewUsers returns the user store over db.
func NewUsers(db *bun.DB) *Users {
	return &Users{db: db}
}

// ByID returns the user with the given id, or an ENOTFOUND error.
func (s *Users) ByID(ctx context.Context, id string) (*User, error) {
	u := new(User)
	err := s.db.NewSelect().Model(u).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("user")
	}
	if err != nil {
		return nil, fmt.Errorf("select user: %w", err)
	}
	return u, nil
}

// Create inserts u. A second user with the same email is an ECONFLICT error.
func (s *Users) Create(ctx context.Context, u *User) error {
	q := s.db.NewInsert().Model(u)
	if u.CreatedAt.IsZero() {
		// Leave a zero createdAt to the column's default, as Better Auth's
		// table has one, and read it back. Bun would otherwise write NULL on
		// SQLite (it writes DEFAULT only on PostgreSQL), which the NOT NULL
		// column refuses.
		q = q.ExcludeColumn("createdAt").Returning("?", bun.Ident("createdAt"))
	}
	_, err := q.Exec(ctx)
	if isUniqueViolation(err) {
		return &Error{Code: ECONFLICT, Field: "email", Message: "a user with this email already exists", Err: err}
	}
	if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is a unique-constraint violation on
// either database. The drivers are matched by behaviour so that this
// package does not depend on them.
func isUniqueViolation(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return pg.SQLState() == "23505"
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		// SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY.
		return lite.Code() == 2067 || lite.Code() == 1555
	}
	return false
}
