package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/testutil"
)

// TestSelectionBoundsRefuseWideDocumentsBeforeValidation pins the pass
// before validation: fields are counted with fragments expanded, as
// written and at each spread, and a set's width with the selections of
// same-named fields merged, as the overlapping-fields rule compares them;
// cycles end (validation refuses them).
func TestSelectionBoundsRefuseWideDocumentsBeforeValidation(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite, func(c *api.Config) {
		c.Limits.MaxSelections = 30
		c.Limits.MaxSetSelections = 10
	})
	for _, tt := range []struct {
		name  string
		query string
		code  string // "" for an answer
	}{
		{"10 fields in a set", "{ " + strings.Repeat("__typename ", 10) + "}", ""},
		{"11 fields in a set", "{ " + strings.Repeat("__typename ", 11) + "}", api.CodeComplexityLimitExceeded},
		{"a fragment's fields count in the set it is spread in",
			"fragment F on Query { " + strings.Repeat("__typename ", 6) + "} { ...F " + strings.Repeat("__typename ", 5) + "}", api.CodeComplexityLimitExceeded},
		{"so do an inline fragment's", "{ ... on Query { " + strings.Repeat("__typename ", 6) + "} " + strings.Repeat("__typename ", 5) + "}", api.CodeComplexityLimitExceeded},
		{"a fragment spread twice counts twice",
			"fragment F on Query { " + strings.Repeat("__typename ", 6) + "} { ...F ... on Query { ...F } }", api.CodeComplexityLimitExceeded},
		{"nested sets count on their own", "{ __schema { types { name } queryType { name } } " + strings.Repeat("__typename ", 8) + "}", ""},
		{"40 fields in sets of at most 8", "{ " + repeated(4, "a%d: __schema { queryType { "+strings.Repeat("name ", 8)+"} }") + "}", api.CodeComplexityLimitExceeded},
		{"same-named fields' selections merge", "{ " + strings.Repeat("a: __schema { queryType { "+strings.Repeat("name ", 4)+"} } ", 3) + "}", api.CodeComplexityLimitExceeded},
		{"differently named ones do not", "{ " + repeated(3, "a%d: __schema { queryType { "+strings.Repeat("name ", 4)+"} }") + "}", ""},
		{"a fragment counts as written and at each spread: 8 + 2 × (1 + 8)",
			"fragment F on __Type { " + strings.Repeat("name ", 8) + "} { a: __type(name: \"Task\") { ...F } b: __type(name: \"Task\") { ...F } }", ""},
		{"and so past the limit: 8 + 3 × (1 + 8)",
			"fragment F on __Type { " + strings.Repeat("name ", 8) + "} { " + repeated(3, "a%d: __type(name: \"Task\") { ...F }") + "}", api.CodeComplexityLimitExceeded},
		{"fragments doubling 40 times are refused without expanding them", doublingFragments(40, "__typename"), api.CodeComplexityLimitExceeded},
		{"an unused fragment counts too", "fragment F on Query { " + strings.Repeat("__typename ", 11) + "} { __typename }", api.CodeComplexityLimitExceeded},
		{"a fragment cycle ends", "fragment A on Query { ...B } fragment B on Query { ...A } { ...A }", "GRAPHQL_VALIDATION_FAILED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.gql(t, "", tt.query, nil)
			if tt.code == "" {
				r.mustOK(t, nil)
				return
			}
			r.mustBeRequestError(t, http.StatusOK, tt.code)
		})
	}
}

// TestAnswersStopAtTheSizeLimit pins GRAPHQL_MAX_RESPONSE_BYTES: an answer
// that would grow past it is one error and no data, and one under it is
// untouched.
func TestAnswersStopAtTheSizeLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.Limits.MaxResponseBytes = 4000 })
	alice := mint(t, "alice")
	for range 20 {
		srv.createTask(t, alice, strings.Repeat("x", 190), false)
	}
	srv.gql(t, alice, `{ tasks(first: 10) { nodes { title } } }`, nil).mustOK(t, nil) // about 2 KB

	r := srv.gql(t, alice, `{ tasks(first: 20) { nodes { id title } } }`, nil) // about 4.3 KB
	if r.Status != http.StatusOK || len(r.Errors) != 1 || r.Errors[0].Code() != api.CodeComplexityLimitExceeded || string(r.Data) != "null" {
		t.Fatalf("want 200, data null and one COMPLEXITY_LIMIT_EXCEEDED, got %d: %s", r.Status, r.Body)
	}
	if !strings.Contains(r.Errors[0].Message, "4000 bytes") {
		t.Errorf("message %q does not give the limit", r.Errors[0].Message)
	}
}
