package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/taskql/server/model"
)

// The error codes of the limits.
const (
	// CodeComplexityLimitExceeded refuses a document over the cost or depth
	// limit, before it runs.
	CodeComplexityLimitExceeded = "COMPLEXITY_LIMIT_EXCEEDED"
	// CodeRateLimited refuses mutations over the caller's rate;
	// extensions.retryAfter says in how many seconds to try again.
	CodeRateLimited = "RATE_LIMITED"
	// CodeTimeout reports an operation cancelled at the execution timeout.
	CodeTimeout = "TIMEOUT"
)

// The defaults of Limits, which config also uses for its variables.
const (
	// DefaultMaxCost lets one request read three full pages
	// (tasks(first: 100) with everything a list screen shows, me and
	// taskStats cost 1,617) or run about 95 root fields (each is a database
	// round trip).
	DefaultMaxCost = 5000
	// DefaultMaxDepth leaves room for the standard introspection query
	// (13 to 16 levels, depending on the client); the deepest data query
	// is 4 (tasks.edges.node.title).
	DefaultMaxDepth = 20
	// DefaultMaxTokens bounds the parser's work; the standard
	// introspection query is about 400 tokens.
	DefaultMaxTokens = 10000
	// DefaultExecutionTimeout bounds how long a query or mutation may run,
	// database included.
	DefaultExecutionTimeout = 10 * time.Second
	// DefaultMutationRate and DefaultMutationBurst are each user's token
	// bucket for mutations: 50 a second sustained, 100 at once.
	DefaultMutationRate  = 50
	DefaultMutationBurst = 100
)

// The cost model. Every field costs 1 plus what its selection costs. A root
// field (and TaskConnection.totalCount) is at least one database round trip
// and costs rootFieldCost more. Inside a field with first or last, the list
// fields of its selection (edges, nodes) count once per item of the page.
// Introspection reads the in-memory schema and costs nothing; gqlparser's
// MaxIntrospectionDepth rule bounds it instead (lists of types nest at most
// three deep).
const rootFieldCost = 50

// Limits bounds what one request may make the server do. Zero values take
// the defaults above.
type Limits struct {
	// MaxCost bounds the cost of an operation (see the cost model above).
	MaxCost int
	// MaxDepth bounds how deeply fields nest, introspection included.
	MaxDepth int
	// MaxTokens bounds the tokens of a document, so that parsing is cheap.
	MaxTokens int
	// ExecutionTimeout bounds a query or mutation, database queries
	// included (they are cancelled); subscriptions are not bounded.
	ExecutionTimeout time.Duration
	// MutationRate is how many mutations a second each user may run,
	// sustained; MutationBurst how many at once.
	MutationRate  float64
	MutationBurst int
	// DisableIntrospection refuses __schema and __type (never
	// __typename); tooling needs introspection, so it is on by default.
	DisableIntrospection bool
	// DisableSuggestions drops "Did you mean …?" from validation errors,
	// which would otherwise reveal field names with introspection off.
	DisableSuggestions bool
}

func (l Limits) withDefaults() Limits {
	if l.MaxCost <= 0 {
		l.MaxCost = DefaultMaxCost
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxTokens <= 0 {
		l.MaxTokens = DefaultMaxTokens
	}
	if l.ExecutionTimeout <= 0 {
		l.ExecutionTimeout = DefaultExecutionTimeout
	}
	if l.MutationRate <= 0 {
		l.MutationRate = DefaultMutationRate
	}
	if l.MutationBurst <= 0 {
		l.MutationBurst = DefaultMutationBurst
	}
	return l
}

// queryLimits refuses, after validation and before anything runs, an
// operation over the cost or depth limit, and introspection when it is off.
//
// gqlgen's own extension.ComplexityLimit is not used: its walker expands
// every fragment spread anew, so a document of 30 fragments that each
// spread the next one twice costs it 2^30 steps. This walker measures each
// fragment once.
type queryLimits struct {
	maxCost, maxDepth    int
	introspectionAllowed bool
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = queryLimits{}

func (queryLimits) ExtensionName() string                   { return "QueryLimits" }
func (queryLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (l queryLimits) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Operation
	m := &measurer{vars: opCtx.Variables, fragments: map[string]shape{}, costs: map[fragmentCost]int{}}
	s := m.shape(op.SelectionSet)
	if s.introspection && !l.introspectionAllowed {
		err := gqlerror.Errorf("introspection is disabled on this server")
		errcode.Set(err, errcode.ValidationFailed)
		return err
	}
	if s.depth > l.maxDepth {
		return limitError(fmt.Sprintf("the operation nests fields %d deep, above the limit of %d", s.depth, l.maxDepth),
			"depth", s.depth, l.maxDepth)
	}
	// Root fields are each a database round trip.
	cost := m.cost(op.SelectionSet, 1, true)
	if cost > l.maxCost {
		return limitError(fmt.Sprintf("the operation has a cost of %d, above the limit of %d", cost, l.maxCost),
			"cost", cost, l.maxCost)
	}
	return nil
}

func limitError(msg, what string, got, limit int) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{
		"code": CodeComplexityLimitExceeded, what: got, "limit": limit,
	}}
}

// shape is what the walker learns of a selection set: how deep its fields
// nest, and whether it introspects.
type shape struct {
	depth         int
	introspection bool
}

// fragmentCost memoizes the cost of a fragment spread with a page size.
type fragmentCost struct {
	name string
	page int
	root bool
}

// measurer walks one operation. Each fragment is measured once, whatever
// the number of its spreads: validation has refused cycles, so recursion
// ends.
type measurer struct {
	vars      map[string]any
	fragments map[string]shape
	costs     map[fragmentCost]int
}

func (m *measurer) shape(set ast.SelectionSet) shape {
	var s shape
	for _, sel := range set {
		var sub shape
		switch sel := sel.(type) {
		case *ast.Field:
			sub = m.shape(sel.SelectionSet)
			sub.depth++
			if isIntrospection(sel) && sel.Name != "__typename" {
				sub.introspection = true
			}
		case *ast.InlineFragment:
			sub = m.shape(sel.SelectionSet)
		case *ast.FragmentSpread:
			if sel.Definition == nil {
				continue
			}
			var ok bool
			if sub, ok = m.fragments[sel.Name]; !ok {
				sub = m.shape(sel.Definition.SelectionSet)
				m.fragments[sel.Name] = sub
			}
		}
		s.depth = max(s.depth, sub.depth)
		s.introspection = s.introspection || sub.introspection
	}
	return s
}

// isIntrospection reports whether f is an introspection field: __schema,
// __type, __typename, or any field of the introspection types.
func isIntrospection(f *ast.Field) bool {
	return strings.HasPrefix(f.Name, "__") ||
		(f.ObjectDefinition != nil && strings.HasPrefix(f.ObjectDefinition.Name, "__"))
}

// cost is the cost of set, in which list fields count page times; root is
// true for the operation's own selection set.
func (m *measurer) cost(set ast.SelectionSet, page int, root bool) int {
	total := 0
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			total = addCost(total, m.fieldCost(sel, page, root))
		case *ast.InlineFragment:
			total = addCost(total, m.cost(sel.SelectionSet, page, root))
		case *ast.FragmentSpread:
			if sel.Definition == nil {
				continue
			}
			key := fragmentCost{sel.Name, page, root}
			c, ok := m.costs[key]
			if !ok {
				c = m.cost(sel.Definition.SelectionSet, page, root)
				m.costs[key] = c
			}
			total = addCost(total, c)
		}
	}
	return total
}

func (m *measurer) fieldCost(f *ast.Field, page int, root bool) int {
	if isIntrospection(f) {
		return 0
	}
	c := 1
	if root || (f.ObjectDefinition != nil && isDatabaseField(f.ObjectDefinition.Name, f.Name)) {
		c += rootFieldCost
	}
	// A field with first or last pages its list fields; the page size
	// applies to its own selection only.
	childPage := 1
	args := f.ArgumentMap(m.vars)
	if n, ok := pageArg(args, "first"); ok {
		childPage = n
	} else if n, ok := pageArg(args, "last"); ok {
		childPage = n
	} else if f.Definition != nil && f.Definition.Arguments.ForName("first") != nil {
		childPage = model.DefaultPageSize
	}
	child := m.cost(f.SelectionSet, childPage, false)
	if f.Definition != nil && f.Definition.Type.Elem != nil {
		child = mulCost(child, page)
	}
	return addCost(c, child)
}

// isDatabaseField reports whether a field below the root runs a query of
// its own.
func isDatabaseField(typ, field string) bool {
	return typ == "TaskConnection" && field == "totalCount"
}

// pageArg reads a page size argument, capped to what a page can hold (a
// larger one is refused as BAD_USER_INPUT when the field runs, and should
// say so rather than be reported as too costly).
func pageArg(args map[string]any, name string) (int, bool) {
	var n int64
	switch v := args[name].(type) {
	case int:
		n = int64(v)
	case int64:
		n = v
	case int32:
		n = int64(v)
	case float64:
		n = int64(v)
	case json.Number:
		i, err := v.Int64()
		if err != nil {
			return 0, false
		}
		n = i
	default:
		return 0, false
	}
	return int(min(max(n, 0), model.MaxPageSize)), true
}

// addCost and mulCost saturate instead of overflowing, so that no document
// can wrap its cost around to a small number.
func addCost(a, b int) int {
	if c := a + b; c >= a {
		return c
	}
	return int(^uint(0) >> 1)
}

func mulCost(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	if c := a * b; c/b == a {
		return c
	}
	return int(^uint(0) >> 1)
}

// errExecutionTimeout is the cause of the context of an operation that ran
// out of time, which presentError reports as TIMEOUT.
var errExecutionTimeout = errors.New("execution timeout")

// executionTimeout bounds each query and mutation by d: the resolvers, and
// so the database queries they run, see a context that ends at d.
// Subscriptions live as long as their connection and are not bounded.
func executionTimeout(d time.Duration) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		op := graphql.GetOperationContext(ctx).Operation
		if op == nil || op.Operation == ast.Subscription {
			return next(ctx)
		}
		deadline := time.Now().Add(d)
		ctx, cancel := context.WithDeadlineCause(context.WithValue(ctx, deadlineKey{}, deadline), deadline, errExecutionTimeout)
		h := next(ctx)
		return func(ctx context.Context) *graphql.Response {
			// The context is released with the last answer: the only one,
			// or the last part of a @defer stream. (A stream the client
			// abandons is released by the deadline's timer.)
			resp := h(ctx)
			if resp == nil || resp.HasNext == nil || !*resp.HasNext {
				cancel()
			}
			return resp
		}
	}
}

// deadlineKey holds the execution deadline in an operation's context.
type deadlineKey struct{}

// timedOut reports whether ctx reached the execution timeout. The deadline
// is compared too, not only the context's cause: a socket given the same
// deadline (a database dial) can fail a moment before the context's timer
// fires.
func timedOut(ctx context.Context) bool {
	if errors.Is(context.Cause(ctx), errExecutionTimeout) {
		return true
	}
	deadline, ok := ctx.Value(deadlineKey{}).(time.Time)
	return ok && !time.Now().Before(deadline)
}
