package api_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/testutil"
)

// TestCostBudgetIsPerUserForQueriesAndMutations gives each user a budget
// of 200 points that refills very slowly, and checks that queries and
// mutations both spend it, that a user past it is refused whole with a
// retry hint, and that other users and anonymous requests go on.
func TestCostBudgetIsPerUserForQueriesAndMutations(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite, func(c *api.Config) {
		c.Limits.CostRefill = 0.01 // one point every 100 s: none come back during the test
		c.Limits.CostBudget = 200
	})
	alice, bob := mint(t, "alice"), mint(t, "bob")
	const create = `mutation { createTask(input: {title: "t"}) { id } }` // 52 points
	const stats = `{ taskStats { total } }`                              // 52 points

	// 52 + 104 = 156 of 200 points; 44 are left.
	srv.gql(t, alice, create, nil).mustOK(t, nil)
	r := srv.gql(t, alice, `mutation { a: createTask(input: {title: "a"}) { id } b: createTask(input: {title: "b"}) { id } }`, nil)
	r.mustOK(t, nil)
	wantCost(t, r, 104, 44)

	for _, tt := range []struct{ name, query string }{
		{"a mutation", create},
		{"a mutation that would fail anyway", `mutation { deleteTask(id: "999") { id } }`},
		{"a query", stats},
	} {
		t.Run("past the budget, "+tt.name+" is refused", func(t *testing.T) {
			r := srv.gql(t, alice, tt.query, nil)
			r.mustBeRequestError(t, http.StatusTooManyRequests, api.CodeRateLimited)
			secs, ok := r.Errors[0].Extensions["retryAfter"].(float64)
			if !ok || secs < 1 || secs > 1000 {
				t.Errorf("extensions.retryAfter = %v, want 1..1000 seconds", r.Errors[0].Extensions["retryAfter"])
			}
			if h := r.Header.Get("Retry-After"); h != strconv.Itoa(int(secs)) {
				t.Errorf("Retry-After = %q, want %v", h, secs)
			}
			wantCost(t, r, 52, 44) // a refusal takes nothing
		})
	}
	if n := srv.taskCount(t); n != 3 {
		t.Errorf("%d tasks, want 3: a refused mutation ran", n)
	}
	t.Run("what the budget still holds runs", func(t *testing.T) {
		r := srv.gql(t, alice, `{ __type(name: "Task") { name } }`, nil)
		r.mustOK(t, nil)
		wantCost(t, r, 1, 43)
	})
	t.Run("other users have budgets of their own", func(t *testing.T) {
		srv.gql(t, bob, stats, nil).mustOK(t, nil)
	})
	t.Run("an operation costing more than the whole budget is refused", func(t *testing.T) {
		r := srv.gql(t, mint(t, "carol"), aliased(4, `taskStats { total }`), nil)
		r.mustBeRequestError(t, http.StatusTooManyRequests, api.CodeRateLimited)
		if _, ok := r.Errors[0].Extensions["retryAfter"]; ok {
			t.Errorf("retryAfter on an operation that can never run: %s", r.Body)
		}
		srv.gql(t, mint(t, "carol"), stats, nil).mustOK(t, nil) // carol's budget is untouched
	})
	t.Run("anonymous requests spend no budget, and report their cost", func(t *testing.T) {
		for range 5 {
			r := srv.gql(t, "", `{ __type(name: "Task") { name } }`, nil)
			r.mustOK(t, nil)
			if cost, _ := r.Extensions["cost"].(map[string]any); cost["requested"] != 1.0 || cost["budget"] != nil {
				t.Errorf("extensions.cost = %v, want requested 1 and no budget", r.Extensions["cost"])
			}
		}
	})
}

// wantCost checks extensions.cost: the operation's cost and what is left
// of the user's budget.
func wantCost(t *testing.T, r *response, requested, remaining float64) {
	t.Helper()
	cost, _ := r.Extensions["cost"].(map[string]any)
	budget, _ := cost["budget"].(map[string]any)
	if cost["requested"] != requested || cost["limit"] == nil || budget["remaining"] != remaining || budget["capacity"] == nil {
		t.Errorf("extensions.cost = %v, want requested %v, a limit, and budget.remaining %v of a capacity", cost, requested, remaining)
	}
}

// TestDefaultBudgetAdmitsABurstOf100Mutations pins the default: a client
// may create 100 tasks at once without being refused.
func TestDefaultBudgetAdmitsABurstOf100Mutations(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	for i := range 100 {
		r := srv.gql(t, alice, `mutation { createTask(input: {title: "t"}) { id } }`, nil)
		if r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Fatalf("mutation %d refused: %s", i+1, r.Body)
		}
	}
}
