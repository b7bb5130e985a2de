package resolver_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/taskql/server/graph"
)

// userDataTypes are the types that hold a user's data. A root field that
// returns one, or a type that reaches one through its fields, or takes an
// input that writes one, must be marked @auth.
var userDataTypes = []string{"Task", "TaskConnection", "TaskStats", "User"}

// TestEveryRootFieldRequiresAuth walks the schema the server serves and
// fails for a root field (of Query, Mutation, Subscription) without @auth.
//
// It can fail: with `@auth` removed from `taskStats` in
// graph/schema.graphqls (in a scratch copy of the repository, as gqlgen
// embeds that file), it reported
//
//	Query.taskStats lacks @auth
//	Query.taskStats returns TaskStats, which reaches user data (TaskStats), without @auth
//
// and TestAuthCheckCatches below keeps showing it on synthetic schemas.
func TestEveryRootFieldRequiresAuth(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()

	// Guard against passing vacuously after a rename.
	for _, name := range userDataTypes {
		if schema.Types[name] == nil {
			t.Errorf("the schema has no type %s: update userDataTypes", name)
		}
	}
	if d := schema.Directives["auth"]; d == nil || !slices.Contains(d.Locations, ast.LocationFieldDefinition) {
		t.Fatalf("the schema does not declare directive @auth on FIELD_DEFINITION")
	}
	roots := 0
	for _, root := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		if root != nil {
			roots += len(publicFields(root))
		}
	}
	if schema.Query == nil || schema.Mutation == nil || roots < 9 {
		t.Fatalf("expected Query and Mutation with at least 9 fields between them, found %d", roots)
	}

	for _, problem := range authProblems(schema) {
		t.Error(problem)
	}
}

// TestAuthCheckCatches shows that authProblems finds each kind of missing
// @auth, so that TestEveryRootFieldRequiresAuth passing means something.
func TestAuthCheckCatches(t *testing.T) {
	const base = `
directive @auth on FIELD_DEFINITION
type Task { id: ID! title: String! }
type User { id: ID! }
type TaskStats { total: Int! }
type TaskEdge { node: Task! }
type TaskConnection { edges: [TaskEdge!]! }
type Wrapper { page: TaskConnection }
input CreateTaskInput { title: String! }
`
	tests := []struct {
		name string
		sdl  string
		want []string
	}{
		{
			name: "all marked",
			sdl: `type Query { me: User! @auth tasks: TaskConnection! @auth }
				type Mutation { createTask(input: CreateTaskInput!): Task! @auth }`,
		},
		{
			name: "a query field returning a task without @auth",
			sdl:  `type Query { me: User! @auth task(id: ID!): Task }`,
			want: []string{"Query.task lacks @auth", "Query.task returns Task"},
		},
		{
			name: "a list of tasks, non-null wrapped",
			sdl:  `type Query { all: [Task!]! }`,
			want: []string{"Query.all lacks @auth", "Query.all returns Task"},
		},
		{
			name: "a type that reaches tasks through two levels of fields",
			sdl:  `type Query { wrapped: Wrapper }`,
			want: []string{"Query.wrapped lacks @auth", "Query.wrapped returns Wrapper, which reaches user data (Task, TaskConnection)"},
		},
		{
			name: "a mutation that writes a task but returns a scalar",
			sdl:  `type Query { me: User! @auth } type Mutation { addTask(input: CreateTaskInput!): Boolean }`,
			want: []string{"Mutation.addTask lacks @auth", "Mutation.addTask takes CreateTaskInput"},
		},
		{
			name: "a subscription",
			sdl:  `type Query { me: User! @auth } type Subscription { taskChanged: Task! }`,
			want: []string{"Subscription.taskChanged lacks @auth"},
		},
		{
			name: "a harmless field still needs @auth",
			sdl:  `type Query { me: User! @auth version: String }`,
			want: []string{"Query.version lacks @auth"},
		},
		{
			name: "another directive is not @auth",
			sdl:  `directive @cached on FIELD_DEFINITION type Query { me: User! @cached }`,
			want: []string{"Query.me lacks @auth", "Query.me returns User"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema, err := gqlparser.LoadSchema(&ast.Source{Name: "test.graphqls", Input: base + tt.sdl})
			if err != nil {
				t.Fatalf("load schema: %v", err)
			}
			got := authProblems(schema)
			all := strings.Join(got, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("want a problem containing %q, got:\n%s", w, all)
				}
			}
			if len(tt.want) == 0 && len(got) > 0 {
				t.Errorf("want no problems, got:\n%s", all)
			}
		})
	}
}

// authProblems lists every root field that should carry @auth and does
// not: every root field except introspection must (the simple rule), and
// the message says why it matters when the field returns, reaches or takes
// user data.
func authProblems(schema *ast.Schema) []string {
	var problems []string
	for _, root := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		if root == nil {
			continue
		}
		for _, f := range publicFields(root) {
			if f.Directives.ForName("auth") != nil {
				continue
			}
			name := root.Name + "." + f.Name
			problems = append(problems, name+" lacks @auth")
			ret := f.Type.Name() // unwraps lists and non-null
			if reached := reachesUserData(schema, ret); len(reached) > 0 {
				problems = append(problems, name+" returns "+ret+", which reaches user data ("+strings.Join(reached, ", ")+"), without @auth")
			}
			for _, arg := range f.Arguments {
				if in := arg.Type.Name(); strings.Contains(in, "Task") {
					problems = append(problems, name+" takes "+in+", which writes or selects user data, without @auth")
				}
			}
		}
	}
	return problems
}

// reachesUserData returns the user data types reachable from the type
// named start through the fields of objects, interfaces and unions.
func reachesUserData(schema *ast.Schema, start string) []string {
	var found []string
	seen := map[string]bool{}
	queue := []string{start}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		if slices.Contains(userDataTypes, name) {
			found = append(found, name)
		}
		def := schema.Types[name]
		if def == nil {
			continue
		}
		for _, f := range def.Fields {
			queue = append(queue, f.Type.Name())
		}
		for _, p := range schema.GetPossibleTypes(def) {
			queue = append(queue, p.Name)
		}
	}
	slices.Sort(found)
	return found
}

// publicFields are a root type's fields except introspection's.
func publicFields(def *ast.Definition) []*ast.FieldDefinition {
	var fields []*ast.FieldDefinition
	for _, f := range def.Fields {
		if !strings.HasPrefix(f.Name, "__") {
			fields = append(fields, f)
		}
	}
	return fields
}
