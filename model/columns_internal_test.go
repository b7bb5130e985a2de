package model

import (
	"reflect"
	"strings"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// TestTaskColumnsFollowTheModelsFields pins taskColumns, which scanTasks
// reads by position, to the order of Task's fields: a field added or
// moved without it would scan values into the wrong fields.
func TestTaskColumnsFollowTheModelsFields(t *testing.T) {
	t.Parallel()
	db := bun.NewDB(nil, pgdialect.New())
	var names []string
	for _, f := range db.Table(reflect.TypeFor[Task]()).Fields {
		names = append(names, f.Name)
	}
	if got, want := taskColumns, strings.Join(names, ", "); got != want {
		t.Fatalf("taskColumns = %q, want Task's fields in order: %q", got, want)
	}
}
