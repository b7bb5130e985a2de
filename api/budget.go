package api

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"golang.org/x/time/rate"

	"github.com/taskql/server/model"
)

// defaultMaxBuckets bounds the memory the budget keeps: one token bucket
// per user seen recently.
const defaultMaxBuckets = 100_000

// costBudget gives each user a token bucket of cost points, spent by
// queries and mutations alike, so that one user, or one stolen token,
// cannot take the server or the database from everyone else: a request is
// bounded by the cost limit, a user's requests by the budget.
//
// An operation takes its whole cost before any of it runs, all or nothing:
// a refused request has changed nothing. Anonymous operations have no
// budget: @auth refuses them every field but introspection and
// __typename, which the cost limit bounds.
type costBudget struct {
	rate  rate.Limit
	burst int
	// idle is how long a bucket takes to fill up again; a bucket idle that
	// long is the same as a new one and can be forgotten.
	idle time.Duration
	// maxBuckets bounds how many buckets are kept.
	maxBuckets int
	now        func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	limiter *rate.Limiter
	seen    time.Time
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = (*costBudget)(nil)

// newCostBudget returns buckets of burst points refilled at perSecond.
func newCostBudget(perSecond float64, burst int) *costBudget {
	return &costBudget{
		rate:       rate.Limit(perSecond),
		burst:      burst,
		idle:       time.Duration(float64(burst) / perSecond * float64(time.Second)),
		maxBuckets: defaultMaxBuckets,
		now:        time.Now,
		buckets:    map[string]*bucket{},
	}
}

func (*costBudget) ExtensionName() string                   { return "CostBudget" }
func (*costBudget) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext runs after queryLimits, which leaves the
// operation's cost in its stats.
func (b *costBudget) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	viewer, ok := model.ViewerFromContext(ctx)
	cost, costed := opCtx.Stats.GetExtension(costStatsKey).(*operationCost)
	if !ok || !costed {
		return nil
	}
	if cost.requested > b.burst {
		return &gqlerror.Error{
			Message:    fmt.Sprintf("the operation costs %d, more than the whole budget of %d", cost.requested, b.burst),
			Extensions: map[string]any{"code": CodeRateLimited},
		}
	}
	wait, left := b.take(viewer.ID, cost.requested)
	cost.budget = &budgetState{remaining: int(left), capacity: b.burst, refillPerSecond: float64(b.rate)}
	if wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		return &gqlerror.Error{
			Message:    fmt.Sprintf("the cost budget is spent: try again in %d s", secs),
			Extensions: map[string]any{"code": CodeRateLimited, "retryAfter": secs},
		}
	}
	return nil
}

// take takes n tokens from user's bucket and returns zero, or leaves the
// bucket as it was and returns how long until n tokens are there; and the
// tokens left.
func (l *costBudget) take(user string, n int) (time.Duration, float64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[user]
	if b == nil {
		l.makeRoom(now)
		b = &bucket{limiter: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[user] = b
	}
	b.seen = now
	r := b.limiter.ReserveN(now, n)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, b.limiter.TokensAt(now)
	}
	return 0, b.limiter.TokensAt(now)
}

// makeRoom forgets buckets that have been idle long enough to be full
// again, at most once per idle period or when the map is full. If most
// buckets are in use, it drops arbitrary ones, a hundredth of the map at a
// time so that the next new users do not sweep again; that only ever lets
// a user through sooner.
func (l *costBudget) makeRoom(now time.Time) {
	if len(l.buckets) < l.maxBuckets && now.Sub(l.lastSweep) < l.idle {
		return
	}
	l.lastSweep = now
	for id, b := range l.buckets {
		if now.Sub(b.seen) >= l.idle {
			delete(l.buckets, id)
		}
	}
	if len(l.buckets) < l.maxBuckets {
		return
	}
	keep := l.maxBuckets - max(l.maxBuckets/100, 1)
	for id := range l.buckets {
		if len(l.buckets) <= keep {
			break
		}
		delete(l.buckets, id)
	}
}

// size is how many buckets are kept, for tests.
func (l *costBudget) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
