package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/taskql/server/graph"
	"github.com/taskql/server/graph/scalar"
	"github.com/taskql/server/model"
)

// marshalled is what m writes.
func marshalled(m graphql.Marshaler) string {
	var b bytes.Buffer
	m.MarshalGQL(&b)
	return b.String()
}

// appendStringCases are strings whose JSON needs care, invalid UTF-8
// among them (which the database cannot hold, so only this test sees it).
var appendStringCases = []string{
	"", "plain", `"`, `\`, `\"`, "\x00", "\x01\x1f\x20", "\t\r\n\b\f", "\x7f", "<>&", "\u2028\u2029",
	"😀👍🏽 é 漢字", "\xff", "a\xc3", "\xc3\x28", "\xed\xa0\x80", "\xf0\x9f\x98", "\ufffd", "\"\xff\\\x01",
}

// TestAppendStringWritesAsMarshalString pins appendString to the marshaler
// gqlgen writes every String with.
func TestAppendStringWritesAsMarshalString(t *testing.T) {
	for _, s := range appendStringCases {
		if got, want := string(appendString([]byte("x"), s)), "x"+marshalled(graphql.MarshalString(s)); got != want {
			t.Errorf("appendString(%q) = %q, want %q", s, got, want)
		}
	}
}

// FuzzAppendStringWritesAsMarshalString looks for a string the two write
// differently.
func FuzzAppendStringWritesAsMarshalString(f *testing.F) {
	for _, s := range appendStringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendString(nil, s)), marshalled(graphql.MarshalString(s)); got != want {
			t.Errorf("appendString(%q) = %q, want %q", s, got, want)
		}
	})
}

// TestAppendTimeWritesAsTheTimeScalar pins appendTime to scalar.MarshalTime
// and the id to scalar.MarshalInt64ID, for times in other zones and with
// more or fewer digits than six.
func TestAppendTimeWritesAsTheTimeScalar(t *testing.T) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	for _, tm := range []time.Time{
		{},
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 1000, zone),
		time.Date(1, 1, 1, 0, 0, 0, 1, zone),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	} {
		if got, want := string(appendTime(nil, tm)), marshalled(scalar.MarshalTime(tm)); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
	for _, id := range []int64{1, 42, 1 << 62} {
		fields := []graphql.CollectedField{{Field: &ast.Field{Name: "id", Alias: "id"}}}
		if got, want := string(appendTask(nil, fields, &model.Task{ID: id})), `{"id":`+marshalled(scalar.MarshalInt64ID(id))+`}`; got != want {
			t.Errorf("id %d: %s, want %s", id, got, want)
		}
	}
}

// collected is a selection of the fields named, each under its name; a
// name "node" gets the selection { id }.
func collected(names ...string) []graphql.CollectedField {
	var fields []graphql.CollectedField
	for _, name := range names {
		f := graphql.CollectedField{Field: &ast.Field{Name: name, Alias: name}}
		if name == "node" {
			f.Selections = ast.SelectionSet{&ast.Field{Name: "id", Alias: "id"}}
		}
		fields = append(fields, f)
	}
	return fields
}

// TestFastPathKnowsEveryField fails when the schema gains a field of Task
// or TaskEdge that the fast path does not write: it would then silently
// hand every list that selects it back to gqlgen, losing the speed. Teach
// appendTask (or appendEdges) the field and its marshaler, and add it to
// the differential test's documents.
func TestFastPathKnowsEveryField(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	opCtx := &graphql.OperationContext{Doc: &ast.QueryDocument{}}
	for _, typ := range []string{"Task", "TaskEdge"} {
		var names []string
		for _, f := range schema.Types[typ].Fields {
			names = append(names, f.Name)
		}
		fields := collected(append(names, "__typename")...)
		if typ == "Task" {
			if !writableTask(fields) {
				t.Fatalf("the fast path does not write every field of Task: %v", names)
			}
			var written map[string]any
			if err := json.Unmarshal(appendTask(nil, fields, &model.Task{ID: 1}), &written); err != nil || len(written) != len(fields) {
				t.Errorf("appendTask wrote %v (%v) for %d fields", written, err, len(fields))
			}
			continue
		}
		if _, _, ok := writableEdges(opCtx, fields, []string{"Task"}); !ok {
			t.Errorf("the fast path does not write every field of TaskEdge: %v", names)
		}
	}
}

// TestFastPathLeavesToGqlgenWhatItDoesNotWrite pins the cases where the
// fast path gives the field back to gqlgen, which then reports or writes
// it as it always has.
func TestFastPathLeavesToGqlgenWhatItDoesNotWrite(t *testing.T) {
	with := func(f func(*graphql.CollectedField)) []graphql.CollectedField {
		fields := collected("id", "title")
		f(&fields[1])
		return fields
	}
	for _, tt := range []struct {
		name   string
		fields []graphql.CollectedField
	}{
		{"a field it does not know", collected("id", "tags")},
		{"a field with arguments", with(func(f *graphql.CollectedField) {
			f.Arguments = ast.ArgumentList{{Name: "truncate"}}
		})},
		{"a directive other than @skip and @include", with(func(f *graphql.CollectedField) {
			f.Directives = ast.DirectiveList{{Name: "include"}, {Name: "upper"}}
		})},
		{"a deferred field", with(func(f *graphql.CollectedField) { f.Deferrables = []*graphql.Deferrable{{Label: "d"}} })},
		{"two fields under one alias", with(func(f *graphql.CollectedField) { f.Alias = "id" })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if writableTask(tt.fields) {
				t.Error("writableTask accepts it")
			}
			edge := append(collected("cursor"), tt.fields...)
			if _, _, ok := writableEdges(&graphql.OperationContext{}, edge, []string{"Task"}); ok {
				t.Error("writableEdges accepts it as an edge's fields")
			}
		})
	}
	t.Run("@skip and @include are applied already, so they are fine", func(t *testing.T) {
		if !writableTask(with(func(f *graphql.CollectedField) {
			f.Directives = ast.DirectiveList{{Name: "skip"}, {Name: "include"}}
		})) {
			t.Error("writableTask refuses them")
		}
	})

	f := &fastPath{}
	task := &model.Task{ID: 1, Title: "t"}
	t.Run("a nil task in a list", func(t *testing.T) {
		if _, ok := f.appendTasks(nil, collected("id"), []*model.Task{task, nil}); ok {
			t.Error("appendTasks writes it")
		}
	})
	t.Run("a nil edge or node", func(t *testing.T) {
		nodes := [][]graphql.CollectedField{nil, collected("id")}
		for _, edges := range [][]*model.TaskEdge{{{Node: task}, nil}, {{Node: task}, {Cursor: "c"}}} {
			if _, ok := f.appendEdges(collected("cursor", "node"), nodes, edges, nil); ok {
				t.Errorf("appendEdges writes %v", edges)
			}
		}
		if _, ok := f.appendEdges(collected("node"), nodes[1:], nil, []*model.Task{nil}); ok {
			t.Error("appendEdges writes the edges of a nil task")
		}
	})
}

// TestFastPathWritesWithOneAllocation pins the size estimate: a page is
// written into one buffer, grown only by strings that need escapes.
func TestFastPathWritesWithOneAllocation(t *testing.T) {
	desc := strings.Repeat("d", 300)
	tasks := make([]*model.Task, 20)
	for i := range tasks {
		tasks[i] = &model.Task{ID: int64(i + 1000000), Title: strings.Repeat("t", i*9), Description: &desc,
			CreatedAt: time.Now(), UpdatedAt: time.Now()}
	}
	f := &fastPath{}
	fields := collected("__typename", "id", "title", "description", "completed", "createdAt", "updatedAt")
	if n := testing.AllocsPerRun(100, func() { f.appendTasks(nil, fields, tasks) }); n != 1 {
		t.Errorf("appendTasks: %v allocations, want 1", n)
	}
	edgeFields := collected("__typename", "node")
	edgeFields = append(edgeFields, graphql.CollectedField{Field: &ast.Field{Name: "node", Alias: "again"}})
	nodes := [][]graphql.CollectedField{nil, fields, fields}
	if n := testing.AllocsPerRun(100, func() { f.appendEdges(edgeFields, nodes, nil, tasks) }); n != 1 {
		t.Errorf("appendEdges: %v allocations, want 1", n)
	}
}
