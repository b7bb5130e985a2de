package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"
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
