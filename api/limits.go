package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/taskql/server/model"
)

// The error codes of the limits.
const (
	// CodeComplexityLimitExceeded refuses a document over the size, cost
	// or depth limit before it runs, and an answer over the size limit.
	CodeComplexityLimitExceeded = "COMPLEXITY_LIMIT_EXCEEDED"
	// CodeRateLimited refuses an operation over the caller's cost budget;
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
	// round trip). The standard introspection query costs 1,224, about a quarter
	// of it.
	DefaultMaxCost = 5000
	// DefaultMaxDepth leaves room for the standard introspection query
	// (13 to 16 levels, depending on the client); the deepest data query
	// is 4 (tasks.edges.node.title).
	DefaultMaxDepth = 20
	// DefaultMaxTokens bounds the parser's work; the standard
	// introspection query is about 400 tokens.
	DefaultMaxTokens = 10000
	// DefaultMaxSelections and DefaultMaxSetSelections bound validation,
	// whose overlapping-fields rule is quadratic in the fields of a set:
	// the standard introspection query has about 300 fields expanded, its
	// widest set 8.
	DefaultMaxSelections    = 2000
	DefaultMaxSetSelections = 250
	// DefaultMaxResponseBytes is far above the largest answer within the
	// cost limit (three full pages of tasks are about 1.3 MB).
	DefaultMaxResponseBytes = 10 << 20
	// DefaultExecutionTimeout bounds how long a query or mutation may run,
	// database included.
	DefaultExecutionTimeout = 10 * time.Second
	// DefaultCostBudget and DefaultCostRefill are each user's budget: ten
	// operations at the cost limit at once, and two a second sustained
	// (a page of 20 tasks costs about 200).
	DefaultCostBudget = 10 * DefaultMaxCost
	DefaultCostRefill = 2 * DefaultMaxCost
)

// Limits bounds what one request may make the server do. Zero values take
// the defaults above.
type Limits struct {
	// MaxCost bounds the cost of an operation (see costs.go).
	MaxCost int
	// MaxDepth bounds how deeply fields nest, introspection included.
	MaxDepth int
	// MaxTokens bounds the tokens of a document, so that parsing is cheap.
	MaxTokens int
	// MaxSelections bounds the fields of a document once its fragments
	// are expanded, and MaxSetSelections the fields of a selection set
	// once its fragments are expanded and the selections of same-named
	// fields merged: validation compares those pairwise.
	MaxSelections    int
	MaxSetSelections int
	// MaxResponseBytes bounds the size of an answer, whatever the cost
	// model missed.
	MaxResponseBytes int
	// ExecutionTimeout bounds a query or mutation, database queries
	// included (they are cancelled); subscriptions are not bounded.
	ExecutionTimeout time.Duration
	// CostBudget is each user's token bucket, in cost points, for queries
	// and mutations alike: CostBudget points at once, refilled at
	// CostRefill points a second.
	CostBudget int
	CostRefill float64
	// DisableIntrospection refuses __schema and __type (never
	// __typename); tooling needs introspection, so it is on by default.
	DisableIntrospection bool
	// DisableSuggestions drops "Did you mean …?" from validation errors,
	// which would otherwise reveal field names with introspection off.
	DisableSuggestions bool
}

func (l Limits) withDefaults() Limits {
	for _, v := range []struct {
		p   *int
		def int
	}{
		{&l.MaxCost, DefaultMaxCost},
		{&l.MaxDepth, DefaultMaxDepth},
		{&l.MaxTokens, DefaultMaxTokens},
		{&l.MaxSelections, DefaultMaxSelections},
		{&l.MaxSetSelections, DefaultMaxSetSelections},
		{&l.MaxResponseBytes, DefaultMaxResponseBytes},
		{&l.CostBudget, DefaultCostBudget},
	} {
		if *v.p <= 0 {
			*v.p = v.def
		}
	}
	if l.ExecutionTimeout <= 0 {
		l.ExecutionTimeout = DefaultExecutionTimeout
	}
	if l.CostRefill <= 0 {
		l.CostRefill = DefaultCostRefill
	}
	return l
}

// queryLimits refuses, after validation and before anything runs, an
// operation over the cost or depth limit, and introspection when it is off.
// It leaves the operation's cost in its stats for the budget and the
// answer's extensions.
//
// gqlgen's own extension.ComplexityLimit is not used: its walker expands
// every fragment spread anew, so a document of 30 fragments that each
// spread the next one twice costs it 2^30 steps, and it counts
// introspection as free. This walker measures each fragment once per page
// size and costs introspection lists by the size of the schema.
type queryLimits struct {
	es                   graphql.ExecutableSchema
	maxCost, maxDepth    int
	introspectionAllowed bool
	// listSizes are the lengths the lists of introspection have, by
	// "Type.field".
	listSizes map[string]int
	maxWrap   int
	// cache keeps the cost of recent operations: a hash of the document,
	// the operation's name and its variables' values.
	cache graphql.Cache[int]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = (*queryLimits)(nil)

func newQueryLimits(es graphql.ExecutableSchema, l Limits) *queryLimits {
	return &queryLimits{
		es:                   es,
		maxCost:              l.MaxCost,
		maxDepth:             l.MaxDepth,
		introspectionAllowed: !l.DisableIntrospection,
		listSizes:            introspectionListSizes(es.Schema()),
		maxWrap:              maxTypeWrapping(es.Schema()),
		cache:                lru.New[int](1000),
	}
}

func (*queryLimits) ExtensionName() string                   { return "QueryLimits" }
func (*queryLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (l *queryLimits) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	// Variables that cannot be encoded into a key are measured every
	// time: the limits never depend on the cache.
	key, keyErr := costKey(opCtx)
	cost, ok := 0, false
	if keyErr == nil {
		cost, ok = l.cache.Get(ctx, key)
	}
	if !ok {
		var gerr *gqlerror.Error
		if cost, gerr = l.measure(ctx, opCtx); gerr != nil {
			return gerr
		}
		if keyErr == nil {
			l.cache.Add(ctx, key, cost)
		}
	}
	opCtx.Stats.SetExtension(costStatsKey, &operationCost{requested: cost, limit: l.maxCost})
	if cost > l.maxCost {
		return limitError(fmt.Sprintf("the operation has a cost of %d, above the limit of %d", cost, l.maxCost),
			"cost", cost, l.maxCost)
	}
	return nil
}

// measure returns the cost of the operation, or refuses it for its depth
// or its introspection. What it refuses is not cached: the same document
// is refused as cheaply next time.
func (l *queryLimits) measure(ctx context.Context, opCtx *graphql.OperationContext) (int, *gqlerror.Error) {
	op := opCtx.Operation
	m := &measurer{ctx: ctx, es: l.es, listSizes: l.listSizes, maxWrap: l.maxWrap, vars: opCtx.Variables,
		fragments: map[string]shape{}, costs: map[fragmentCost]int{}}
	s := m.shape(op.SelectionSet)
	if s.introspection && !l.introspectionAllowed {
		err := gqlerror.Errorf("introspection is disabled on this server")
		errcode.Set(err, errcode.ValidationFailed)
		return 0, err
	}
	if s.depth > l.maxDepth {
		return 0, limitError(fmt.Sprintf("the operation nests fields %d deep, above the limit of %d", s.depth, l.maxDepth),
			"depth", s.depth, l.maxDepth)
	}
	return m.cost(op.SelectionSet, 1), nil
}

// costKey identifies what an operation's cost depends on: its document,
// which operation of it, and the values of its variables (a page size may
// be one).
func costKey(opCtx *graphql.OperationContext) (string, error) {
	vars, err := json.Marshal(opCtx.Variables) // map keys sorted
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, part := range []string{opCtx.RawQuery, opCtx.OperationName, string(vars)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return string(h.Sum(nil)), nil
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

// fragmentCost memoizes the cost of a fragment spread with a page size,
// at a depth of ofType.
type fragmentCost struct {
	name       string
	page, wrap int
}

// measurer walks one operation. Each fragment is measured once per page
// size, whatever the number of its spreads: validation has refused cycles,
// so recursion ends.
type measurer struct {
	ctx       context.Context
	es        graphql.ExecutableSchema
	listSizes map[string]int
	// maxWrap is how many ofType levels the schema's types have at most;
	// wrap how many the walk is inside.
	maxWrap, wrap int
	vars          map[string]any
	fragments     map[string]shape
	costs         map[fragmentCost]int
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

// cost is the cost of set, in whose list fields each item counts page
// times.
func (m *measurer) cost(set ast.SelectionSet, page int) int {
	total := 0
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			total = addCost(total, m.fieldCost(sel, page))
		case *ast.InlineFragment:
			total = addCost(total, m.cost(sel.SelectionSet, page))
		case *ast.FragmentSpread:
			if sel.Definition == nil {
				continue
			}
			key := fragmentCost{sel.Name, page, m.wrap}
			c, ok := m.costs[key]
			if !ok {
				c = m.cost(sel.Definition.SelectionSet, page)
				m.costs[key] = c
			}
			total = addCost(total, c)
		}
	}
	return total
}

// fieldCost is the cost of f: what graph.Config.Complexity says of the
// field given the cost of its selection, or 1 plus that cost for a field
// it does not price. A list counts its selection once per item: the page
// size for a page of tasks, the length the schema gives it for
// introspection. A field with first or last sets the page size of the list
// fields of its own selection.
func (m *measurer) fieldCost(f *ast.Field, page int) int {
	if f.Definition == nil || f.ObjectDefinition == nil {
		return 1 // __typename
	}
	if len(f.SelectionSet) == 0 && isIntrospection(f) {
		// A name or a description of the schema in memory: the objects
		// that hold it are what costs.
		return 0
	}
	if f.ObjectDefinition.Name+"."+f.Name == ofTypeField {
		// The schema wraps no type deeper than m.maxWrap: past that, ofType
		// is null and costs nothing.
		if m.wrap >= m.maxWrap {
			return 0
		}
		m.wrap++
		defer func() { m.wrap-- }()
	}
	args := f.ArgumentMap(m.vars)
	childPage := 1
	if n, ok := pageArg(args, "first"); ok {
		childPage = n
	} else if n, ok := pageArg(args, "last"); ok {
		childPage = n
	} else if f.Definition.Arguments.ForName("first") != nil {
		childPage = model.DefaultPageSize
	}
	child := m.cost(f.SelectionSet, childPage)
	if f.Definition.Type.Elem != nil {
		if n, ok := m.listSizes[f.ObjectDefinition.Name+"."+f.Name]; ok {
			// Each item of an introspection list is an object, whose
			// leaves cost nothing.
			return mulCost(addCost(1, child), n)
		}
		child = mulCost(child, page)
	}
	if c, ok := m.es.Complexity(m.ctx, f.ObjectDefinition.Name, f.Name, child, args); ok {
		return c
	}
	return addCost(1, child)
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
	return math.MaxInt
}

func mulCost(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	if c := a * b; c/b == a {
		return c
	}
	return math.MaxInt
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
