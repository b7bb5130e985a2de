package api

import (
	"context"
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/taskql/server/graph/scalar"
	"github.com/taskql/server/model"
)

// fastPath writes tasks, lists of tasks and lists of task edges as JSON
// itself, once their field's resolver has returned, instead of letting
// gqlgen marshal them field by field.
//
// Why: gqlgen v0.17.98 starts a goroutine per list element
// (graphql.MarshalSliceConcurrently, graphql/slice.go) and makes about
// seven allocations per field of every element (a FieldContext, its Child
// closure, a context value, the middleware closures); no gqlgen.yml option
// turns that off (issue 12). Measured with BenchmarkListTasks (a page of
// 20 tasks, six fields, through the whole handler; medians of 5 runs on 2
// loaded cores, without → with it; BenchmarkListTasksWithoutFastPath
// measures the first column again in any run):
//
//	             allocs/op       cpu-ns/op
//	SQLite       2,632 → 927     713 µs → 420 µs
//	PostgreSQL   2,230 → 525     809 µs → 415 µs
//
// BenchmarkCreateTask: 418 → 343 allocations (PostgreSQL), CPU within noise.
// What is left is mostly the database driver's scanning in model.List.
//
// How: a field middleware may return a graphql.Marshaler as the field's
// value, which the executor then writes as it is (graphql/resolve_field.go).
// The selection is collected with graphql.CollectFields, as the generated
// code collects it, so aliases, __typename, fragments, inline fragments and
// @skip/@include apply as they would; each scalar is written as its
// marshaler writes it (appendString is graphql.MarshalString, appendTime is
// scalar.MarshalTime). The JSON is written while the middleware runs, not
// when gqlgen writes the answer, so that a panic is recovered by the
// field's own recover into INTERNAL_SERVER_ERROR, and its size is known:
// it is added to the answer's size (answerSize), which otherwise counts
// field by field.
//
// Anything it does not know it leaves to gqlgen, which then does all the
// work as before: an operation with @defer anywhere, subscriptions (whose
// answer count answerSize keeps over the whole stream), a field of Task it
// does not know (a new one added to the schema: TestFastPathKnowsEveryField
// fails then), arguments or directives other than @skip/@include, errors,
// and nil where the schema says non-null, so that gqlgen reports it.
//
// TestFastPathAnswersAsGqlgenDoes (fastpath_test.go) runs a corpus of
// documents through a server with and one without it and compares the
// answers byte for byte.
type fastPath struct {
	// beforeWrite, when not nil, runs before each answer is written; tests
	// make it panic.
	beforeWrite func()
	// taskType and edgeType are the satisfies lists of CollectFields for
	// the two object types written here; never modified.
	taskType, edgeType []string
}

// fastPathConfig is how tests configure the fast path (export_test.go);
// the zero value is what the server runs with.
type fastPathConfig struct {
	// off leaves every field to gqlgen: the reference the differential
	// test compares with.
	off bool
	// beforeWrite is fastPath.beforeWrite.
	beforeWrite func()
}

// useFastPath adds the fast path to gql unless cfg turns it off. It must
// come after answerSize, so that answerSize's check of the answer so far
// runs before the resolver.
func useFastPath(gql *handler.Server, cfg fastPathConfig) {
	if cfg.off {
		return
	}
	gql.Use(&fastPath{beforeWrite: cfg.beforeWrite, taskType: []string{"Task"}, edgeType: []string{"TaskEdge"}})
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
	graphql.FieldInterceptor
} = (*fastPath)(nil)

// fastPathStatsKey holds, in an operation's stats, whether the fast path
// may write its fields (a bool).
const fastPathStatsKey = "fastPath"

func (*fastPath) ExtensionName() string                   { return "FastPath" }
func (*fastPath) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext decides once per operation whether the fast path
// applies: a deferred fragment changes how gqlgen writes the fields around
// it, and it may be anywhere, so the whole document is looked at.
func (*fastPath) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	on := opCtx.Operation != nil && opCtx.Operation.Operation != ast.Subscription && !documentDefers(opCtx.Doc)
	opCtx.Stats.SetExtension(fastPathStatsKey, on)
	return nil
}

// The kinds of field the fast path writes, by their schema type.
const (
	notFast  = iota
	oneTask  // Task or Task!
	taskList // [Task!]!
	edgeList // [TaskEdge!]!
)

// fieldKind tells from the field's definition whether the fast path may
// write it; a list of nullable tasks is not one of them.
func fieldKind(fc *graphql.FieldContext) int {
	if fc == nil || fc.Field.Field == nil || fc.Field.Definition == nil || fc.Field.Definition.Type == nil {
		return notFast
	}
	t := fc.Field.Definition.Type
	switch {
	case t.Elem == nil && t.NamedType == "Task":
		return oneTask
	case t.Elem != nil && t.NonNull && t.Elem.NonNull && t.Elem.Elem == nil && t.Elem.NamedType == "Task":
		return taskList
	case t.Elem != nil && t.NonNull && t.Elem.NonNull && t.Elem.Elem == nil && t.Elem.NamedType == "TaskEdge":
		return edgeList
	}
	return notFast
}

// InterceptField runs the resolver of a field whose type is Task,
// [Task!]! or [TaskEdge!]! and returns its value written as JSON; any
// other field, and any value it does not write, goes on as gqlgen has it.
func (f *fastPath) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	kind := fieldKind(fc)
	if kind == notFast {
		return next(ctx)
	}
	opCtx := graphql.GetOperationContext(ctx)
	if on, _ := opCtx.Stats.GetExtension(fastPathStatsKey).(bool); !on {
		return next(ctx)
	}
	switch kind {
	case oneTask:
		res, err := next(ctx)
		t, ok := res.(*model.Task)
		if err != nil || !ok || t == nil {
			return res, err
		}
		fields := graphql.CollectFields(opCtx, fc.Field.Selections, f.taskType)
		if !writableTask(fields) {
			return res, err
		}
		f.ready()
		b := make([]byte, 0, taskSize(fields, t))
		return f.answer(ctx, appendTask(b, fields, t)), nil

	case taskList:
		res, err := next(ctx)
		tasks, ok := res.([]*model.Task)
		if err != nil || !ok {
			return res, err
		}
		fields := graphql.CollectFields(opCtx, fc.Field.Selections, f.taskType)
		if !writableTask(fields) {
			return res, err
		}
		b, ok := f.appendTasks(nil, fields, tasks)
		if !ok {
			return res, err
		}
		return f.answer(ctx, b), nil

	case edgeList:
		fields := graphql.CollectFields(opCtx, fc.Field.Selections, f.edgeType)
		nodes, cursors, ok := writableEdges(opCtx, fields, f.taskType)
		if !ok {
			return next(ctx)
		}
		if !cursors {
			// Without edges.cursor, the edges are the page's tasks: writing
			// those spares encoding a cursor per task (TaskPage.Edges).
			if page, ok := parentResult(fc).(*model.TaskPage); ok {
				if b, ok := f.appendEdges(fields, nodes, nil, page.Nodes); ok {
					return f.answer(ctx, b), nil
				}
				return next(ctx)
			}
		}
		res, err := next(ctx)
		edges, ok := res.([]*model.TaskEdge)
		if err != nil || !ok {
			return res, err
		}
		b, ok := f.appendEdges(fields, nodes, edges, nil)
		if !ok {
			return res, err
		}
		return f.answer(ctx, b), nil
	}
	return next(ctx)
}

// parentResult is the value of the object whose field fc is, when gqlgen
// recorded it.
func parentResult(fc *graphql.FieldContext) any {
	if fc.Parent == nil {
		return nil
	}
	return fc.Parent.Result
}

// ready runs the test hook before an answer is written.
func (f *fastPath) ready() {
	if f.beforeWrite != nil {
		f.beforeWrite()
	}
}

// answer counts b in the operation's answer size and returns it as the
// field's value.
func (f *fastPath) answer(ctx context.Context, b []byte) graphql.Marshaler {
	countAnswer(ctx, len(b))
	return rawJSON{b}
}

// rawJSON is JSON written by the fast path, which the executor copies into
// the answer. (Not a slice type: estimateSize would count a slice's
// length as its size on top of countAnswer.)
type rawJSON struct{ b []byte }

// MarshalGQL implements graphql.Marshaler.
func (r rawJSON) MarshalGQL(w io.Writer) { w.Write(r.b) }

// appendTasks appends the JSON list of tasks to b, or reports false for a
// nil task, which gqlgen must report.
func (f *fastPath) appendTasks(b []byte, fields []graphql.CollectedField, tasks []*model.Task) ([]byte, bool) {
	n := 2
	for _, t := range tasks {
		if t == nil {
			return nil, false
		}
		n += taskSize(fields, t) + 1
	}
	f.ready()
	if b == nil {
		b = make([]byte, 0, n)
	}
	b = append(b, '[')
	for i, t := range tasks {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTask(b, fields, t)
	}
	return append(b, ']'), true
}

// appendEdges appends the JSON list of edges written with fields, the
// node field fields[i] with the Task selection nodes[i]; or, when edges is
// nil, that of the edges of tasks without their cursors (fields then
// selects none). It reports false for a nil edge or node, which gqlgen must
// report.
func (f *fastPath) appendEdges(fields []graphql.CollectedField, nodes [][]graphql.CollectedField, edges []*model.TaskEdge, tasks []*model.Task) ([]byte, bool) {
	n := len(tasks)
	if edges != nil {
		n = len(edges)
	}
	// edge returns the i-th edge's cursor and node.
	edge := func(i int) (string, *model.Task) {
		if edges == nil {
			return "", tasks[i]
		}
		if edges[i] == nil {
			return "", nil
		}
		return edges[i].Cursor, edges[i].Node
	}
	size := 2
	for i := range n {
		cursor, node := edge(i)
		if node == nil {
			return nil, false
		}
		size += 3
		for j, field := range fields {
			size += len(field.Alias) + 4
			switch field.Name {
			case "__typename":
				size += len("TaskEdge") + 2
			case "cursor":
				size += len(cursor) + 2
			case "node":
				size += taskSize(nodes[j], node)
			}
		}
	}
	f.ready()
	b := make([]byte, 0, size)
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		cursor, node := edge(i)
		b = append(b, '{')
		for j, field := range fields {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendString(b, field.Alias)
			b = append(b, ':')
			switch field.Name {
			case "__typename":
				b = appendString(b, "TaskEdge")
			case "cursor":
				b = appendString(b, cursor)
			case "node":
				b = appendTask(b, nodes[j], node)
			}
		}
		b = append(b, '}')
	}
	return append(b, ']'), true
}

// writableEdges reports whether fields, a TaskEdge's selection, holds only
// what the fast path writes, and whether it selects the cursor. nodes[i]
// is the Task selection of fields[i] when that is a node.
func writableEdges(opCtx *graphql.OperationContext, fields []graphql.CollectedField, taskType []string) (nodes [][]graphql.CollectedField, cursor, ok bool) {
	if !distinctPlainFields(fields) {
		return nil, false, false
	}
	for i, field := range fields {
		switch field.Name {
		case "__typename":
		case "cursor":
			cursor = true
		case "node":
			if nodes == nil {
				nodes = make([][]graphql.CollectedField, len(fields))
			}
			nodes[i] = graphql.CollectFields(opCtx, field.Selections, taskType)
			if !writableTask(nodes[i]) {
				return nil, false, false
			}
		default:
			return nil, false, false
		}
	}
	return nodes, cursor, true
}

// writableTask reports whether fields, a Task's selection, holds only what
// appendTask writes.
func writableTask(fields []graphql.CollectedField) bool {
	if !distinctPlainFields(fields) {
		return false
	}
	for _, field := range fields {
		if !writesTaskField(field.Name) {
			return false
		}
	}
	return true
}

// writesTaskField reports whether appendTask writes the field of Task
// named name.
func writesTaskField(name string) bool {
	switch name {
	case "__typename", "id", "title", "description", "completed", "createdAt", "updatedAt":
		return true
	}
	return false
}

// distinctPlainFields reports whether no field has arguments, a directive
// other than @skip and @include (which CollectFields applied) or a
// deferred part, and no two share an alias (gqlgen would write the first
// only). Validation leaves none of these on Task and TaskEdge today; the
// check keeps the fast path right if the schema changes.
func distinctPlainFields(fields []graphql.CollectedField) bool {
	for i, field := range fields {
		if len(field.Arguments) > 0 || len(field.Deferrables) > 0 {
			return false
		}
		for _, d := range field.Directives {
			if d.Name != "skip" && d.Name != "include" {
				return false
			}
		}
		for _, other := range fields[:i] {
			if other.Alias == field.Alias {
				return false
			}
		}
	}
	return true
}

// timeSize is the length of a Time in JSON, its quotes included.
const timeSize = len(scalar.TimeLayout) + 2

// taskSize is about how long appendTask's JSON of t is: exact unless a
// string needs escapes, so that the answer is written with one allocation.
func taskSize(fields []graphql.CollectedField, t *model.Task) int {
	n := 2
	for _, field := range fields {
		n += len(field.Alias) + 4
		switch field.Name {
		case "__typename":
			n += len("Task") + 2
		case "id":
			n += 22
		case "title":
			n += len(t.Title) + 2
		case "description":
			if t.Description == nil {
				n += 4
			} else {
				n += len(*t.Description) + 2
			}
		case "completed":
			n += 5
		case "createdAt", "updatedAt":
			n += timeSize
		}
	}
	return n
}

// appendTask appends the JSON object of t with fields, which writableTask
// accepted, as gqlgen's _Task writes it.
func appendTask(b []byte, fields []graphql.CollectedField, t *model.Task) []byte {
	b = append(b, '{')
	for i, field := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, field.Alias)
		b = append(b, ':')
		switch field.Name {
		case "__typename":
			b = appendString(b, "Task")
		case "id":
			// scalar.MarshalInt64ID
			b = append(b, '"')
			b = strconv.AppendInt(b, t.ID, 10)
			b = append(b, '"')
		case "title":
			b = appendString(b, t.Title)
		case "description":
			if t.Description == nil {
				b = append(b, "null"...)
			} else {
				b = appendString(b, *t.Description)
			}
		case "completed":
			b = strconv.AppendBool(b, t.Completed)
		case "createdAt":
			b = appendTime(b, t.CreatedAt)
		case "updatedAt":
			b = appendTime(b, t.UpdatedAt)
		}
	}
	return append(b, '}')
}

// appendTime appends t as scalar.MarshalTime writes it.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, scalar.TimeLayout)
	return append(b, '"')
}

// appendString appends s quoted as graphql.MarshalString writes it: only
// control characters, the backslash and the quote are escaped, and bytes
// that are not UTF-8 are copied as they are. (It reads bytes where gqlgen
// reads runes; the escaped characters are all ASCII, which no byte of a
// multi-byte sequence or of invalid UTF-8 is, so the two agree.)
func appendString(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '\\' && c != '"' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '\t':
			b = append(b, `\t`...)
		case '\r':
			b = append(b, `\r`...)
		case '\n':
			b = append(b, `\n`...)
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		default:
			b = append(b, `\u00`...)
			b = append(b, hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
