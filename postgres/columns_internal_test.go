package postgres

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/schema"

	"github.com/taskql/server/model"
)

// The event payload is a copy of the task row in two places: wireTask
// (what encodeChange writes and decodeChange reads) and the
// json_build_object of Writer.notifyExpr (what PostgreSQL writes for the
// mutation's own statement). These tests derive what both must hold from
// model.Task, the one description of the task, so that a column added
// to the model fails here, naming what is missing, rather than as an
// event without it.

// taskFields are model.Task's columns as Bun reads them, in field order.
func taskFields() []*schema.Field {
	return bun.NewDB(nil, pgdialect.New()).Table(reflect.TypeFor[model.Task]()).Fields
}

// jsonName is the payload's name of a column: user_id is userId, the
// GraphQL spelling (a format instances agree on: add, never rename).
func jsonName(column string) string {
	parts := strings.Split(column, "_")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return strings.Join(parts, "")
}

// TestTheWireTaskHasAFieldForEachColumnOfTheModel pins wireTask to
// model.Task: for each column, a field of the same Go name and type
// whose JSON name is the column's, and no field that is not a column.
func TestTheWireTaskHasAFieldForEachColumnOfTheModel(t *testing.T) {
	t.Parallel()
	wire := reflect.TypeFor[wireTask]()
	for _, f := range taskFields() {
		t.Run(f.Name, func(t *testing.T) {
			w, ok := wire.FieldByName(f.GoName)
			if !ok {
				t.Fatalf("wireTask has no field for the column %s: add %s %s, tagged json:%q, and copy it in encodeChange and decodeChange",
					f.Name, f.GoName, f.StructField.Type, jsonName(f.Name))
			}
			if w.Type != f.StructField.Type {
				t.Errorf("wireTask.%s is %s, model.Task's is %s", f.GoName, w.Type, f.StructField.Type)
			}
			if tag := w.Tag.Get("json"); tag != jsonName(f.Name) {
				t.Errorf("wireTask.%s is named %q in JSON, want %q (the column %s)", f.GoName, tag, jsonName(f.Name), f.Name)
			}
		})
	}
	if n, want := wire.NumField(), len(taskFields()); n != want {
		t.Errorf("wireTask has %d fields, model.Task %d columns: one field for each column, no other", n, want)
	}
}

// filledTask is a task whose every field holds a value of its own, none
// zero, set by reflection so that a field added to model.Task is filled
// too (or the test says which type it cannot fill).
func filledTask(t *testing.T) *model.Task {
	t.Helper()
	task := &model.Task{}
	v := reflect.ValueOf(task).Elem()
	for i, f := range taskFields() {
		if !fill(v.FieldByIndex(f.Index), i) {
			t.Fatalf("filledTask cannot fill %s of type %s: teach fill", f.GoName, f.StructField.Type)
		}
	}
	return task
}

// fill sets v, the field of column i, to a value of its own, or reports
// that it does not know v's type.
func fill(v reflect.Value, i int) bool {
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2026, 1, 1+i, 12, 0, 0, 123456000, time.UTC)))
	case v.Kind() == reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if !fill(p.Elem(), i) {
			return false
		}
		v.Set(p)
	case v.Kind() == reflect.Int64, v.Kind() == reflect.Int:
		v.SetInt(int64(1000 + i))
	case v.Kind() == reflect.String:
		v.SetString(fmt.Sprintf("column %d", i))
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	default:
		return false
	}
	return true
}

// TestAChangeKeepsEveryColumnOfTheTaskThroughTheWire pins encodeChange
// and decodeChange, which copy wireTask's fields one by one: each column
// of the model arrives as it left.
func TestAChangeKeepsEveryColumnOfTheTaskThroughTheWire(t *testing.T) {
	t.Parallel()
	sent := &model.TaskChange{Kind: model.ChangeUpdated, Task: filledTask(t)}
	payload, err := encodeChange(sent)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeChange(payload)
	if err != nil {
		t.Fatal(err)
	}
	want, gotV := reflect.ValueOf(sent.Task).Elem(), reflect.ValueOf(got.Task).Elem()
	for _, f := range taskFields() {
		if a, b := gotV.FieldByIndex(f.Index).Interface(), want.FieldByIndex(f.Index).Interface(); !reflect.DeepEqual(a, b) {
			t.Errorf("%s (column %s) arrived as %#v, was %#v: copy it in encodeChange and decodeChange", f.GoName, f.Name, a, b)
		}
	}
	if got.Kind != sent.Kind {
		t.Errorf("kind arrived as %q, was %q", got.Kind, sent.Kind)
	}
}

// publishedPair is one "'key', t.column" of notifyExpr's task object.
var publishedPair = regexp.MustCompile(`'(\w+)', t\.(\w+)`)

// TestTheNotificationBuildsTheWireTaskFromEveryColumn pins the
// json_build_object PostgreSQL runs to wireTask's JSON names: each column
// of the model, under its JSON name, and nothing else, so that what the
// statement notifies decodes as what encodeChange would have sent.
func TestTheNotificationBuildsTheWireTaskFromEveryColumn(t *testing.T) {
	t.Parallel()
	expr := newWriter(DefaultChannel).notifyExpr(model.ChangeCreated, func(any) string { return "?" })
	_, object, found := strings.Cut(expr, "'task', json_build_object(")
	if !found {
		t.Fatalf("no task object in %s", expr)
	}
	got := map[string]string{}
	for _, m := range publishedPair.FindAllStringSubmatch(object, -1) {
		got[m[1]] = m[2]
	}
	var columns []string
	for _, f := range taskFields() {
		columns = append(columns, f.Name)
		key := jsonName(f.Name)
		if col, ok := got[key]; !ok {
			t.Errorf("the statement's payload lacks %q: add '%s', t.%s to notifyExpr's json_build_object", key, key, f.Name)
		} else if col != f.Name {
			t.Errorf("the statement's payload has %q from the column %s, want %s", key, col, f.Name)
		}
	}
	for key, col := range got {
		if !slices.Contains(columns, col) || jsonName(col) != key {
			t.Errorf("the statement's payload has %q from %s, which is not a column of model.Task under its name", key, col)
		}
	}
}
