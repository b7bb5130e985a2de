package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"
)

// scalarsSchema has what the server's schema lacks for these tests: Float
// arguments, lists, and Ints nested in input objects.
const scalarsSchema = `
input In { i: Int, f: Float, b: Boolean, s: String, id: ID, l: [Int!], in: In }
type Query { q(i: Int, f: Float, b: [Boolean], ll: [[Int]], in: In, ins: [In!], ids: [ID]): Int }
`

// TestStrictScalarsWalkListsAndInputObjects runs strictScalars the way
// gqlgen does, after validator.VariableValues, on variables decoded with
// UseNumber as the transports decode them.
func TestStrictScalarsWalkListsAndInputObjects(t *testing.T) {
	schema := gqlparser.MustLoadSchema(&ast.Source{Name: "test.graphqls", Input: scalarsSchema})
	doc, errs := gqlparser.LoadQuery(schema, `query($i: Int, $f: Float, $b: [Boolean], $ll: [[Int]], $in: In, $ins: [In!], $ids: [ID]) {
		q(i: $i, f: $f, b: $b, ll: $ll, in: $in, ins: $ins, ids: $ids) }`)
	if errs != nil {
		t.Fatal(errs)
	}
	ext := &strictScalars{schema: schema}
	tests := []struct {
		name string
		vars string
		// refused is the message wanted; "" for accepted variables.
		refused string
	}{
		{"numbers, booleans and strings where they belong", `{"i":1,"f":1.5,"b":[true,false],"ll":[[1,2],[3]],"in":{"i":1,"f":2,"b":false,"s":"x","id":7,"l":[1],"in":{"i":2}},"ins":[{"f":0.5}],"ids":["1",2]}`, ""},
		{"null everywhere", `{"i":null,"f":null,"b":[null],"ll":[null,[null]],"in":{"i":null,"in":null},"ins":null,"ids":[null]}`, ""},
		{"a whole Float", `{"f":3}`, ""},
		{"a single value for a list", `{"b":true,"ins":{"i":1}}`, ""},
		{"a Float as a string", `{"f":"1.5"}`, "variable.f must be a Float, not a string"},
		{"an Int as a string inside an input object", `{"in":{"i":"1"}}`, "variable.in.i must be an Int, not a string"},
		{"a Float as a string inside an input object", `{"in":{"f":"1.5"}}`, "variable.in.f must be a Float, not a string"},
		{"an Int as a string two input objects deep", `{"in":{"in":{"i":"1"}}}`, "variable.in.in.i must be an Int, not a string"},
		{"a fractional Int inside an input object", `{"in":{"i":1.5}}`, "variable.in.i"},
		{"an Int beyond 32 bits inside an input object", `{"in":{"i":2147483648}}`, "variable.in.i must be an Int, which has 32 bits"},
		{"an Int as a string inside a list inside an input object", `{"in":{"l":[1,"2"]}}`, "variable.in.l[1] must be an Int, not a string"},
		{"an Int as a string in a list of lists", `{"ll":[[1],[2,"3"]]}`, "variable.ll[1][1] must be an Int, not a string"},
		{"a Boolean as a string in a list", `{"b":[true,"false"]}`, "variable.b[1]"},
		{"a String as a number inside an input object", `{"in":{"s":5}}`, "variable.in.s must be a String, not a number"},
		{"a Float as a string in a list of input objects", `{"ins":[{"f":1},{"f":"2"}]}`, "variable.ins[1].f must be a Float, not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw map[string]any
			dec := json.NewDecoder(strings.NewReader(tt.vars))
			dec.UseNumber()
			if err := dec.Decode(&raw); err != nil {
				t.Fatal(err)
			}
			op := doc.Operations[0]
			// gqlparser's refusals and ours, as one message.
			var msg string
			if vars, err := validator.VariableValues(schema, op, raw); err != nil {
				msg = err.Error()
			} else if err := ext.MutateOperationContext(context.Background(), &graphql.OperationContext{Operation: op, Variables: vars}); err != nil {
				msg = err.Message
				if code := err.Extensions["code"]; code != "GRAPHQL_VALIDATION_FAILED" {
					t.Errorf("code %v, want GRAPHQL_VALIDATION_FAILED as gqlparser's", code)
				}
				if len(err.Path) < 2 || err.Path[0] != ast.PathName("variable") {
					t.Errorf("path %v, want the variable's", err.Path)
				}
			}
			switch {
			case tt.refused == "" && msg != "":
				t.Fatalf("refused: %s", msg)
			case tt.refused != "" && !strings.Contains(msg, tt.refused):
				t.Errorf("error %q, want it to contain %q", msg, tt.refused)
			}
		})
	}
}
