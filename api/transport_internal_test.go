package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// TestStatusForFollowsTheMediaType pins statusFor for every code a
// document can be refused with before it runs, rate limiting included
// (whose refusal is hard to provoke through the server without waiting on
// a real budget).
func TestStatusForFollowsTheMediaType(t *testing.T) {
	tests := []struct {
		code          string
		json, graphql int
	}{
		{errcode.ParseFailed, http.StatusOK, http.StatusBadRequest},
		{errcode.ValidationFailed, http.StatusOK, http.StatusBadRequest},
		{CodeComplexityLimitExceeded, http.StatusOK, http.StatusBadRequest},
		{"PERSISTED_QUERY_NOT_FOUND", http.StatusOK, http.StatusBadRequest},
		{CodeRateLimited, http.StatusTooManyRequests, http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			errs := gqlerror.List{{Message: "refused", Extensions: map[string]any{"code": tt.code}}}
			if got := statusFor(errs, mediaJSON); got != tt.json {
				t.Errorf("under %s: %d, want %d", mediaJSON, got, tt.json)
			}
			if got := statusFor(errs, mediaGraphQLResponse); got != tt.graphql {
				t.Errorf("under %s: %d, want %d", mediaGraphQLResponse, got, tt.graphql)
			}
		})
	}
}

func TestResponseMediaTypeIsTheFirstOfTheTwoTheClientAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		accept string
		want   string
	}{
		{"", mediaJSON},
		{"application/json", mediaJSON},
		{"application/graphql-response+json, application/json;q=0.9", mediaGraphQLResponse},
		{"application/json, application/graphql-response+json", mediaJSON},
		{"APPLICATION/GRAPHQL-RESPONSE+JSON", mediaGraphQLResponse},
		{" application/graphql-response+json ; charset=utf-8", mediaGraphQLResponse},
		{"multipart/mixed;deferSpec=20220824, application/json", mediaJSON},
		{"text/html, */*;q=0.8", mediaJSON},
		{"application/graphql-response+jsonx, application/json", mediaJSON},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.Header.Set("Accept", tt.accept)
		if got := responseMediaType(r); got != tt.want {
			t.Errorf("Accept %q: %s, want %s", tt.accept, got, tt.want)
		}
	}
}

// TestDocumentDefersAnywhere pins what makes serve answer incrementally
// and turns the fast path off for an operation: a @defer anywhere in its
// document, whatever its arguments.
func TestDocumentDefersAnywhere(t *testing.T) {
	for _, tt := range []struct {
		name, doc string
		defers    bool
	}{
		{"none", `{ tasks { nodes { id ... on Task { title } ...F } } } fragment F on Task { id }`, false},
		{"skip and include are not defer", `{ tasks { nodes { id @skip(if: true) ... @include(if: true) { title } } } }`, false},
		{"on an inline fragment", `{ tasks { nodes { id ... @defer { title } } } }`, true},
		{"on a spread", `{ me { id } tasks { nodes { ...F @defer } } } fragment F on Task { id }`, true},
		{"inside a fragment", `{ tasks { nodes { ...F } } } fragment F on Task { id ... @defer(label: "x") { title } }`, true},
		{"far from any task", `{ me { ... @defer { email } } tasks { nodes { id } } }`, true},
		{"turned off by its argument", `{ tasks { nodes { ... @defer(if: false) { title } } } }`, true},
		{"in another operation", `query A { tasks { nodes { id } } } query B { me { ... @defer { id } } }`, true},
		{"deep down", `{ a: tasks { edges { node { ... { ... on Task { ... @defer { id } } } } } } }`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := parser.ParseQuery(&ast.Source{Input: tt.doc})
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := documentDefers(doc); got != tt.defers {
				t.Errorf("documentDefers = %v, want %v", got, tt.defers)
			}
		})
	}
}
