package api

import (
	"context"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/taskql/server/graph"
	"github.com/taskql/server/model"
	"github.com/taskql/server/telemetry"
)

// The cost model. Every field costs 1 plus what its selection costs; a list
// counts its selection once per item (see measurer.fieldCost). The fields
// priced otherwise are in fieldCosts, where gqlgen keeps them.
const (
	// roundTripCost is what a field that queries the database costs on top
	// of that: every root field, and TaskConnection.totalCount.
	roundTripCost = 50
	// searchCostPerChar prices a search by its length: it compares the
	// pattern at every position of every title and description the user
	// has, so its work grows with the pattern (200 characters cost 2,000:
	// two such searches over 192 tasks of 1,200 characters are 70 ms of CPU
	// on SQLite).
	searchCostPerChar = 10
)

// fieldCosts prices the fields that cost more than their selection plus
// one, for the measurer (through the executable schema's Complexity) and
// for gqlgen.
func fieldCosts() graph.ComplexityRoot {
	var c graph.ComplexityRoot
	roundTrip := func(child int) int { return addCost(1+roundTripCost, child) }
	byID := func(child int, _ string) int { return roundTrip(child) }

	c.Query.Me = roundTrip
	c.Query.Task = byID
	c.Query.TaskStats = roundTrip
	c.Query.Tasks = func(child int, filter *model.TaskFilter, _ *model.TaskOrder, _ *int, _ *string, _ *int, _ *string) int {
		cost := roundTrip(child)
		if filter != nil && filter.Search != nil {
			cost = addCost(cost, mulCost(searchCostPerChar, min(utf8.RuneCountInString(*filter.Search), model.MaxSearchLength)))
		}
		return cost
	}
	c.TaskConnection.TotalCount = roundTrip
	c.Mutation.CreateTask = func(child int, _ model.CreateTaskInput) int { return roundTrip(child) }
	c.Mutation.UpdateTask = func(child int, _ string, _ model.UpdateTaskInput) int { return roundTrip(child) }
	c.Mutation.ToggleTask = byID
	c.Mutation.DeleteTask = byID
	c.Mutation.DeleteCompletedTasks = roundTrip
	c.Subscription.TaskChanged = roundTrip
	return c
}

// introspectionListSizes gives each list field of the introspection types
// the length it has in schema, on average over the values that hold it:
// __Schema.types is every type; __Type.fields the fields of all types over
// the number of types, so that types { fields } is costed at the number of
// fields there are; and so on. A document's introspection answer is then
// costed by its size, like any other list, rather than counted as free.
func introspectionListSizes(schema *ast.Schema) map[string]int {
	// mean rounds up, so that a list the schema has is never priced as
	// empty.
	mean := func(total, n int) int {
		if n == 0 {
			return 0
		}
		return (total + n - 1) / n
	}
	var fields, inputFields, enumValues, interfaces, possible, args int
	for _, t := range schema.Types {
		switch t.Kind {
		case ast.Object, ast.Interface:
			fields += len(t.Fields)
			for _, f := range t.Fields {
				args += len(f.Arguments)
			}
		case ast.InputObject:
			inputFields += len(t.Fields)
		case ast.Enum:
			enumValues += len(t.EnumValues)
		}
		interfaces += len(t.Interfaces)
		if t.IsAbstractType() {
			possible += len(schema.GetPossibleTypes(t))
		}
	}
	directiveArgs := 0
	for _, d := range schema.Directives {
		directiveArgs += len(d.Arguments)
	}
	types := len(schema.Types)
	return map[string]int{
		"__Schema.types":        types,
		"__Schema.directives":   len(schema.Directives),
		"__Type.fields":         mean(fields, types),
		"__Type.interfaces":     mean(interfaces, types),
		"__Type.possibleTypes":  mean(possible, types),
		"__Type.enumValues":     mean(enumValues, types),
		"__Type.inputFields":    mean(inputFields, types),
		"__Field.args":          mean(args, fields),
		"__Directive.args":      mean(directiveArgs, len(schema.Directives)),
		"__Directive.locations": 1, // a list of enum values: no selection
	}
}

// ofTypeField is the one introspection field that nests without a list:
// a chain of ofType, as deep as a type's wrappers go.
const ofTypeField = "__Type.ofType"

// maxTypeWrapping is the longest chain of ofType that is not null in
// schema: the most list and non-null wrappers of a field's, argument's or
// input field's type ([Task!]! has three).
func maxTypeWrapping(schema *ast.Schema) int {
	var wrappers func(t *ast.Type) int
	wrappers = func(t *ast.Type) int {
		n := 0
		if t.NonNull {
			n++
		}
		if t.Elem != nil {
			n += 1 + wrappers(t.Elem)
		}
		return n
	}
	most := 0
	for _, t := range schema.Types {
		for _, f := range t.Fields {
			most = max(most, wrappers(f.Type))
			for _, a := range f.Arguments {
				most = max(most, wrappers(a.Type))
			}
		}
	}
	for _, d := range schema.Directives {
		for _, a := range d.Arguments {
			most = max(most, wrappers(a.Type))
		}
	}
	return most
}

// costStatsKey holds an operation's *operationCost in its stats.
const costStatsKey = "cost"

// operationCost is what an answer reports in extensions.cost.
type operationCost struct {
	requested, limit int
	// budget is the user's budget after the operation; nil for anonymous
	// operations, which have none.
	budget *budgetState
}

// budgetState is a user's cost budget at one moment.
type budgetState struct {
	remaining, capacity int
	refillPerSecond     float64
}

// costExtension is extensions.cost as clients read it. It is a struct
// rather than a map so that every answer encodes it without sorting keys
// or reflecting on interface values; the fields are in the order
// encoding/json sorts a map's keys, the order clients have always seen.
type costExtension struct {
	Budget    *budgetExtension `json:"budget,omitempty"`
	Limit     int              `json:"limit"`
	Requested int              `json:"requested"`
}

var _ telemetry.CostReport = (*costExtension)(nil)

// RequestedCost implements telemetry.CostReport.
func (c *costExtension) RequestedCost() int { return c.Requested }

type budgetExtension struct {
	Capacity        int     `json:"capacity"`
	RefillPerSecond float64 `json:"refillPerSecond"`
	Remaining       int     `json:"remaining"`
}

func (c *operationCost) extension() *costExtension {
	ext := &costExtension{Limit: c.limit, Requested: c.requested}
	if b := c.budget; b != nil {
		ext.Budget = &budgetExtension{Capacity: b.capacity, RefillPerSecond: b.refillPerSecond, Remaining: b.remaining}
	}
	return ext
}

// costReporter puts extensions.cost on every answer whose operation was
// costed, refused ones included, as GitHub's and Shopify's APIs do, so
// that clients can pace themselves.
type costReporter struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = costReporter{}

func (costReporter) ExtensionName() string                   { return "CostReporter" }
func (costReporter) Validate(graphql.ExecutableSchema) error { return nil }

func (costReporter) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || resp.Path != nil || !graphql.HasOperationContext(ctx) {
		return resp // a later part of a @defer stream reports nothing
	}
	cost, ok := graphql.GetOperationContext(ctx).Stats.GetExtension(costStatsKey).(*operationCost)
	if !ok {
		return resp
	}
	if resp.Extensions == nil {
		resp.Extensions = map[string]any{}
	}
	resp.Extensions[costStatsKey] = cost.extension()
	return resp
}
