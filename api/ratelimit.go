package api

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"golang.org/x/time/rate"

	"github.com/taskql/server/model"
)

// defaultMaxBuckets bounds the memory the rate limiter keeps: one token
// bucket per user seen recently.
const defaultMaxBuckets = 100_000

// mutationLimiter gives each user a token bucket for mutations, so that one
// user, or one stolen token, cannot take the database from everyone else.
//
// An operation takes one token per mutation field it selects, all or
// nothing, before any of them runs: a refused request has changed nothing.
// Anonymous operations are not counted; @auth refuses their mutations.
type mutationLimiter struct {
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
} = (*mutationLimiter)(nil)

func newMutationLimiter(perSecond float64, burst int) *mutationLimiter {
	return &mutationLimiter{
		rate:       rate.Limit(perSecond),
		burst:      burst,
		idle:       time.Duration(float64(burst) / perSecond * float64(time.Second)),
		maxBuckets: defaultMaxBuckets,
		now:        time.Now,
		buckets:    map[string]*bucket{},
	}
}

func (*mutationLimiter) ExtensionName() string                   { return "MutationRateLimit" }
func (*mutationLimiter) Validate(graphql.ExecutableSchema) error { return nil }

func (l *mutationLimiter) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	if opCtx.Operation.Operation != ast.Mutation {
		return nil
	}
	viewer, ok := model.ViewerFromContext(ctx)
	if !ok {
		return nil
	}
	n := 0
	for _, f := range graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Mutation"}) {
		if !strings.HasPrefix(f.Name, "__") {
			n++
		}
	}
	if n == 0 {
		return nil // only __typename
	}
	if n > l.burst {
		return &gqlerror.Error{
			Message:    fmt.Sprintf("a request may run at most %d mutations", l.burst),
			Extensions: map[string]any{"code": CodeRateLimited},
		}
	}
	if wait := l.take(viewer.ID, n); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		return &gqlerror.Error{
			Message:    fmt.Sprintf("too many mutations: try again in %d s", secs),
			Extensions: map[string]any{"code": CodeRateLimited, "retryAfter": secs},
		}
	}
	return nil
}

// take takes n tokens from user's bucket and returns zero, or leaves the
// bucket as it was and returns how long until n tokens are there.
func (l *mutationLimiter) take(user string, n int) time.Duration {
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
		return d
	}
	return 0
}

// makeRoom forgets buckets that have been idle long enough to be full
// again, at most once per idle period or when the map is full. If most
// buckets are in use, it drops arbitrary ones, a hundredth of the map at a
// time so that the next new users do not sweep again; that only ever lets
// a user through sooner.
func (l *mutationLimiter) makeRoom(now time.Time) {
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
func (l *mutationLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
