package model_test

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/uptrace/bun"

	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// column is a column of the task table as the database or the model
// describes it.
type column struct {
	Name    string
	NotNull bool
}

// liveTaskColumns are the task table's columns as the database created
// them, in their order.
func liveTaskColumns(t *testing.T, db *bun.DB) []column {
	t.Helper()
	q := `SELECT name, "notnull" = 1 OR pk = 1 FROM pragma_table_info('task') ORDER BY cid`
	if isPG(db) {
		q = `SELECT column_name, is_nullable = 'NO' FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'task' ORDER BY ordinal_position`
	}
	rows, err := db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatalf("list the task table's columns: %v", err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.Name, &c.NotNull); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols
}

// modelTaskColumns are the columns the Bun model declares, in the order
// of its fields.
func modelTaskColumns(db *bun.DB) []column {
	var cols []column
	for _, f := range db.Table(reflect.TypeFor[model.Task]()).Fields {
		cols = append(cols, column{Name: f.Name, NotNull: f.NotNull || f.IsPK})
	}
	return cols
}

// TestTheTaskTableHasTheModelsColumns pins the hand-written DDL of each
// dialect to the Bun model: a column added to one and not the other, or
// one whose nullability differs, fails here rather than at the first
// statement that reads it.
func TestTheTaskTableHasTheModelsColumns(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		live, declared := liveTaskColumns(t, db), modelTaskColumns(db)
		if !slices.Equal(live, declared) {
			t.Fatalf("the task table's columns differ from model.Task's fields:\n table %+v\n model %+v", live, declared)
		}
	})
}
