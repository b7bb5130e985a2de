package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/testutil"
)

// TestMutationsAreRateLimitedPerUser gives each user a bucket of 3
// mutations that refills very slowly, and checks that a user past it is
// refused whole, with a retry hint, while queries and other users go on.
func TestMutationsAreRateLimitedPerUser(t *testing.T) {
	t.Parallel()
	const burst = 3
	srv := newServer(t, testutil.SQLite, func(c *api.Config) {
		c.Limits.MutationRate = 0.01 // one token every 100 s: none come back during the test
		c.Limits.MutationBurst = burst
	})
	alice, bob := mint(t, "alice"), mint(t, "bob")
	create := `mutation { createTask(input: {title: "t"}) { id } }`

	// Two aliased mutations take two tokens, then one more takes the last.
	srv.gql(t, alice, `mutation { a: createTask(input: {title: "a"}) { id } b: createTask(input: {title: "b"}) { id } }`, nil).mustOK(t, nil)
	srv.gql(t, alice, create, nil).mustOK(t, nil)

	refused := []struct{ name, query string }{
		{"one more mutation", create},
		{"a mutation that would fail anyway", `mutation { deleteTask(id: "999") { id } }`},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.gql(t, alice, tt.query, nil)
			r.mustBeRequestError(t, http.StatusTooManyRequests, api.CodeRateLimited)
			secs, ok := r.Errors[0].Extensions["retryAfter"].(float64)
			if !ok || secs < 1 || secs > 100 {
				t.Errorf("extensions.retryAfter = %v, want 1..100 seconds", r.Errors[0].Extensions["retryAfter"])
			}
			if h := r.Header.Get("Retry-After"); h != strconv.Itoa(int(secs)) {
				t.Errorf("Retry-After = %q, want %v", h, secs)
			}
		})
	}
	if n := srv.taskCount(t); n != burst {
		t.Errorf("%d tasks, want %d: a refused mutation ran", n, burst)
	}

	t.Run("queries are not limited", func(t *testing.T) {
		var data struct{ TaskStats struct{ Total int } }
		srv.gql(t, alice, `{ taskStats { total } }`, nil).mustOK(t, &data)
		if data.TaskStats.Total != burst {
			t.Errorf("total = %d", data.TaskStats.Total)
		}
	})
	t.Run("other users have buckets of their own", func(t *testing.T) {
		srv.gql(t, bob, create, nil).mustOK(t, nil)
	})
	t.Run("an operation needing more than the burst is refused whole", func(t *testing.T) {
		many := "mutation {"
		for i := range burst + 1 {
			many += ` m` + strconv.Itoa(i) + `: createTask(input: {title: "x"}) { id }`
		}
		many += " }"
		r := srv.gql(t, mint(t, "carol"), many, nil)
		r.mustBeRequestError(t, http.StatusTooManyRequests, api.CodeRateLimited)
		if !strings.Contains(r.Errors[0].Message, "at most 3") {
			t.Errorf("message = %q", r.Errors[0].Message)
		}
		// carol's bucket is untouched: her burst still works.
		srv.gql(t, mint(t, "carol"), create, nil).mustOK(t, nil)
	})
	t.Run("anonymous mutations are refused by @auth, not counted", func(t *testing.T) {
		for range burst + 1 {
			srv.gql(t, "", create, nil).mustError(t, api.CodeUnauthenticated)
		}
	})
}

// TestDefaultMutationRateAdmitsABurstOf100 pins the default: a client may
// create 100 tasks at once without being refused.
func TestDefaultMutationRateAdmitsABurstOf100(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	for i := range api.DefaultMutationBurst {
		r := srv.gql(t, alice, `mutation { createTask(input: {title: "t"}) { id } }`, nil)
		if r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Fatalf("mutation %d refused: %s", i+1, r.Body)
		}
	}
}
