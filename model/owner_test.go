package model_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// newTasks is model.NewTasks whose every statement on the task table is
// checked by ownerRestricted: a method that leaves out, loosens or
// misbinds the owner's predicate fails whichever test calls it, without
// anyone having listed the method.
func newTasks(t testing.TB, db *bun.DB) *model.Tasks {
	t.Helper()
	s := model.NewTasks(db)
	s.InspectStatements(func(ctx context.Context, text string, args []any, users []string) {
		if err := ownerRestricted(ctx, text, args, users); err != nil {
			t.Errorf("a statement on task is not restricted to its owner: %v\n%s", err, text)
		}
	})
	return s
}

var (
	// taskTable is how a statement names the table it reads or writes.
	taskTable = regexp.MustCompile(`\b(FROM|UPDATE|INTO) "?task"?([ (]|$)`)
	// ownerInsert finds the column list of an INSERT and its rows,
	// VALUES (…), (…).
	ownerInsert = regexp.MustCompile(`INSERT INTO "?task"? \(([^)]*)\) VALUES ((?:\([^)]*\)(?:, )?)+)`)
	// insertRow is one row of an INSERT's VALUES.
	insertRow = regexp.MustCompile(`\(([^)]*)\)`)
	// ownerWhere is the owner's predicate as the first condition of a
	// WHERE, followed by another condition joined with AND or by the end
	// of the WHERE clause.
	ownerWhere = regexp.MustCompile(`WHERE \(user_id = \$(\d+)\)( AND \(| ORDER BY | RETURNING | LIMIT |\)|$)`)
	// placeholder is a bound value, with its type when it has one.
	placeholder = regexp.MustCompile(`^\$(\d+)(::[a-z\[\]]+)?$`)
)

// ownerRestricted returns why the statement text, with its bound values
// args, is not restricted to the users it acts for, or nil: a SELECT,
// UPDATE or DELETE must have user_id = the viewer's id as a condition no
// OR can widen, an INSERT must write the viewer's id into user_id, and
// the grouped create must write each call's viewer into its row. A
// statement acting for one user must act for the viewer in ctx.
func ownerRestricted(ctx context.Context, text string, args []any, users []string) error {
	if !taskTable.MatchString(text) {
		return fmt.Errorf("the statement does not name the task table")
	}
	if len(users) == 0 {
		return fmt.Errorf("the statement acts for no user")
	}
	if len(users) == 1 {
		if v, ok := model.ViewerFromContext(ctx); !ok || v.ID != users[0] {
			return fmt.Errorf("the statement acts for %q, the context's viewer is %q", users[0], v.ID)
		}
	}
	bound := func(n string) (any, error) {
		i, _ := strconv.Atoi(n)
		if i < 1 || i > len(args) {
			return nil, fmt.Errorf("$%s has no bound value", n)
		}
		return args[i-1], nil
	}
	if m := ownerInsert.FindStringSubmatch(text); m != nil {
		cols := strings.Split(m[1], ", ")
		i := slices.IndexFunc(cols, func(c string) bool { return strings.Trim(c, `"`) == "user_id" })
		if i < 0 {
			return fmt.Errorf("the INSERT does not write user_id")
		}
		rows := insertRow.FindAllStringSubmatch(m[2], -1)
		if len(rows) != len(users) {
			return fmt.Errorf("the INSERT writes %d rows for %d users", len(rows), len(users))
		}
		for r, row := range rows {
			vals := strings.Split(row[1], ", ")
			if len(vals) != len(cols) {
				return fmt.Errorf("row %d of the INSERT has %d values for %d columns", r+1, len(vals), len(cols))
			}
			p := placeholder.FindStringSubmatch(vals[i])
			if p == nil {
				return fmt.Errorf("the INSERT writes %s into user_id, not a bound value", vals[i])
			}
			v, err := bound(p[1])
			if err != nil {
				return err
			}
			if v != users[r] {
				return fmt.Errorf("the INSERT writes user_id %v into row %d, which is %q's", v, r+1, users[r])
			}
		}
		return nil
	}
	if strings.Contains(text, ") OR (") {
		return fmt.Errorf("an OR joins the conditions, which may widen the owner's")
	}
	m := ownerWhere.FindStringSubmatch(text)
	if m == nil {
		return fmt.Errorf("no WHERE (user_id = $N) AND … restricts the statement")
	}
	v, err := bound(m[1])
	if err != nil {
		return err
	}
	if len(users) != 1 || v != users[0] {
		return fmt.Errorf("user_id is compared with %v for %q", v, users)
	}
	return nil
}

// TestOnlyOwnedSendsStatementsOnTheTaskTable pins the other half of the
// owner check: ownerRestricted sees the statements sent through
// owned.send, owned.sendRow and owned.readPage, so no other code of the package may build
// a statement or send one. Only owner.go may; the user table's store and
// the schema's DDL, which never touch a task row, are the exceptions.
func TestOnlyOwnedSendsStatementsOnTheTaskTable(t *testing.T) {
	t.Parallel()
	// reach are the calls that build or send a statement.
	reach := []string{"NewSelect", "NewInsert", "NewUpdate", "NewDelete", "NewRaw",
		"QueryContext", "QueryRowContext", "ExecContext", "binds",
		// pgx's own API, past database/sql (owned.readPage).
		"WithPgx", "Query", "QueryRow"}
	allowed := map[string][]string{
		"owner.go":  reach,
		"user.go":   {"NewSelect", "NewInsert"},
		"schema.go": {"ExecContext"},
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !slices.Contains(reach, sel.Sel.Name) {
				return true
			}
			if !slices.Contains(allowed[name], sel.Sel.Name) {
				t.Errorf("%s calls %s: statements on the task table start from owned (owner.go), which restricts them to their owner",
					fset.Position(call.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}

func TestOwnerRestrictedRefusesStatementsThatEscapeTheirOwner(t *testing.T) {
	t.Parallel()
	alice := testutil.AsUser("alice")
	const cols = `id, user_id, title, description, completed, created_at, updated_at`
	tests := []struct {
		name  string
		ctx   context.Context
		text  string
		args  []any
		users []string
		// wantErr is a part of the refusal's reason; "" means accepted.
		wantErr string
	}{
		{"a select of the viewer's tasks", alice,
			`SELECT ` + cols + ` FROM "task" WHERE (user_id = $1) AND (id = $2)`, []any{"alice", int64(1)}, []string{"alice"}, ""},
		{"a select with no WHERE", alice,
			`SELECT count(*) FROM "task"`, nil, []string{"alice"}, "no WHERE"},
		{"a select filtered by id alone", alice,
			`SELECT ` + cols + ` FROM "task" WHERE (id = $1)`, []any{int64(1)}, []string{"alice"}, "no WHERE"},
		{"a select of another user's tasks", alice,
			`SELECT count(*) FROM "task" WHERE (user_id = $1)`, []any{"bob"}, []string{"alice"}, "compared with bob"},
		{"a predicate an OR widens", alice,
			`SELECT count(*) FROM "task" WHERE (user_id = $1) OR (completed)`, []any{"alice"}, []string{"alice"}, "an OR"},
		{"a predicate on a placeholder with no value", alice,
			`SELECT count(*) FROM "task" WHERE (user_id = $2)`, []any{"alice"}, []string{"alice"}, "$2 has no bound value"},
		{"a statement for a user other than the context's viewer", alice,
			`DELETE FROM "task" AS "task" WHERE (user_id = $1) RETURNING ` + cols, []any{"bob"}, []string{"bob"}, "the context's viewer is \"alice\""},
		{"a statement without a viewer", context.Background(),
			`DELETE FROM "task" AS "task" WHERE (user_id = $1) RETURNING ` + cols, []any{"bob"}, []string{"bob"}, "the context's viewer is \"\""},
		{"an update of the viewer's task", alice,
			`UPDATE "task" AS "task" SET title = $2, updated_at = now() WHERE (user_id = $1) AND (id = $3::bigint) RETURNING ` + cols,
			[]any{"alice", "t", int64(1)}, []string{"alice"}, ""},
		{"a statement published within itself", alice,
			`WITH t AS (DELETE FROM "task" AS "task" WHERE (user_id = $1) AND (completed) RETURNING ` + cols + `) SELECT t.*, pg_notify($2, t.title) FROM t ORDER BY t.id`,
			[]any{"alice", "ch"}, []string{"alice"}, ""},
		{"an insert for the viewer", alice,
			`INSERT INTO "task" ("user_id", "title", "description", "completed") VALUES ($1, $2, $3, $4) RETURNING ` + cols,
			[]any{"alice", "t", nil, false}, []string{"alice"}, ""},
		{"an insert for another user", alice,
			`INSERT INTO "task" ("user_id", "title", "description", "completed") VALUES ($1, $2, $3, $4) RETURNING ` + cols,
			[]any{"bob", "t", nil, false}, []string{"alice"}, "writes user_id bob"},
		{"an insert with a literal owner", alice,
			`INSERT INTO "task" ("user_id", "title") VALUES ('bob', $1) RETURNING ` + cols,
			[]any{"t"}, []string{"alice"}, "not a bound value"},
		{"an insert that leaves user_id out", alice,
			`INSERT INTO "task" ("title") VALUES ($1) RETURNING ` + cols, []any{"t"}, []string{"alice"}, "does not write user_id"},
		{"an insert of several calls' tasks, each for its viewer", alice,
			`INSERT INTO "task" ("user_id", "title", "description", "completed") VALUES ($1, $2, $3, $4), ($5, $6, $7, $8) RETURNING ` + cols,
			[]any{"alice", "a", nil, false, "bob", "b", nil, true}, []string{"alice", "bob"}, ""},
		{"an insert of several calls' tasks with the owners swapped", alice,
			`INSERT INTO "task" ("user_id", "title", "description", "completed") VALUES ($1, $2, $3, $4), ($5, $6, $7, $8) RETURNING ` + cols,
			[]any{"bob", "a", nil, false, "alice", "b", nil, true}, []string{"alice", "bob"}, "into row 1"},
		{"an insert with a row for nobody", alice,
			`INSERT INTO "task" ("user_id", "title", "description", "completed") VALUES ($1, $2, $3, $4), ($1, $2, $3, $4) RETURNING ` + cols,
			[]any{"alice", "a", nil, false}, []string{"alice"}, "2 rows for 1 users"},
		{"a statement on another table", alice,
			`SELECT * FROM "user" WHERE (user_id = $1)`, []any{"alice"}, []string{"alice"}, "does not name the task table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ownerRestricted(tt.ctx, tt.text, tt.args, tt.users)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ownerRestricted refused an owner's statement: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("ownerRestricted = %v, want a refusal saying %q", err, tt.wantErr)
			}
		})
	}
}
