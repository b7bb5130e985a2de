package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/taskql/server/testutil"
)

// TestVariablesCoerceStrictly pins CONTRACT §3 (finding F5 of issue 10): a
// JSON string is never an Int, Float or Boolean, nor a number a String, in
// variables at any depth, over POST and GET alike; the refusal is
// GRAPHQL_VALIDATION_FAILED naming the variable's path, and runs nothing.
func TestVariablesCoerceStrictly(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	srv.createTask(t, alice, "one", true)
	queries := srv.countQueries()

	const (
		page    = `query($n: Int) { tasks(first: $n) { totalCount } }`
		filter  = `query($f: TaskFilter) { tasks(filter: $f) { totalCount } }`
		include = `query($b: Boolean!) { __typename @include(if: $b) }`
		task    = `query($id: ID!) { task(id: $id) { id } }`
	)
	// The schema takes no Float and no list: scalars_internal_test.go
	// covers those on a schema of its own.
	tests := []struct {
		name  string
		query string
		vars  string
		// refused is what the error message says; "" when the variables
		// are accepted.
		refused string
	}{
		{"an Int as a string", page, `{"n":"100"}`, "variable.n must be an Int, not a string"},
		{"an Int as a fractional number", page, `{"n":1.5}`, "Int"},
		{"an Int beyond 32 bits", page, `{"n":4294967296}`, "variable.n must be an Int"},
		{"an Int as a number", page, `{"n":5}`, ""},
		{"an Int as null", page, `{"n":null}`, ""},
		{"a Boolean as a string", include, `{"b":"true"}`, "Boolean"},
		{"a Boolean", include, `{"b":true}`, ""},
		{"a Boolean as a string inside TaskFilter", filter, `{"f":{"completed":"true"}}`, "Boolean"},
		{"a String as a number inside TaskFilter", filter, `{"f":{"search":5}}`, "variable.f.search must be a String, not a number"},
		{"a Boolean and a String inside TaskFilter", filter, `{"f":{"completed":true,"search":"on"}}`, ""},
		{"null fields inside TaskFilter", filter, `{"f":{"completed":null,"search":null}}`, ""},
		{"an ID as a string", task, `{"id":"1"}`, ""},
		{"an ID as a number", task, `{"id":1}`, ""},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			t.Run(tt.name+" over "+method, func(t *testing.T) {
				var vars map[string]any
				dec := json.NewDecoder(strings.NewReader(tt.vars))
				dec.UseNumber() // so that 4294967296 reaches the server as written
				if err := dec.Decode(&vars); err != nil {
					t.Fatal(err)
				}
				before := queries.n.Load()
				var r *response
				if method == http.MethodGet {
					r = srv.get(t, alice, tt.query, vars)
				} else {
					r = srv.gql(t, alice, tt.query, vars)
				}
				if tt.refused == "" {
					r.mustOK(t, nil)
					return
				}
				r.mustBeRequestError(t, http.StatusOK, "GRAPHQL_VALIDATION_FAILED")
				if msg := r.Errors[0].Message; !strings.Contains(msg, tt.refused) {
					t.Errorf("message %q, want it to contain %q", msg, tt.refused)
				}
				if path := r.Errors[0].Path; len(path) < 2 || path[0] != "variable" {
					t.Errorf("path = %v, want the variable's, as gqlparser gives it", path)
				}
				if n := queries.n.Load() - before; n != 0 {
					t.Errorf("a refused operation ran %d database queries", n)
				}
			})
		}
	}
}
