package main

import (
	"reflect"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/taskql/server/model"
)

// TestTheSeedFillsEveryColumnOfTheModelButItsID pins taskColumns and
// row.values, the benchmark's copy of the task's columns, to model.Task:
// each column but the generated id, in the model's order, with a value of
// the model's type. A column added to the model fails here, by name,
// rather than as a COPY that leaves it to its default or fails outright.
func TestTheSeedFillsEveryColumnOfTheModelButItsID(t *testing.T) {
	values := row{}.values()
	if len(values) != len(taskColumns) {
		t.Fatalf("row.values has %d values for %d taskColumns", len(values), len(taskColumns))
	}
	i := 0
	for _, f := range bun.NewDB(nil, pgdialect.New()).Table(reflect.TypeFor[model.Task]()).Fields {
		if f.AutoIncrement {
			continue // the database's
		}
		if i >= len(taskColumns) {
			t.Errorf("the seed does not fill %s (model.Task.%s): add it to taskColumns and row.values", f.Name, f.GoName)
			continue
		}
		if taskColumns[i] != f.Name {
			t.Errorf("taskColumns[%d] is %s, want %s: model.Task's columns, in order, but id", i, taskColumns[i], f.Name)
		}
		if got := reflect.TypeOf(values[i]); got != f.StructField.Type {
			t.Errorf("row.values[%d] (%s) is a %s, model.Task.%s a %s", i, taskColumns[i], got, f.GoName, f.StructField.Type)
		}
		i++
	}
	for ; i < len(taskColumns); i++ {
		t.Errorf("taskColumns has %s, which is not a column of model.Task", taskColumns[i])
	}
}
