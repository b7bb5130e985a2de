package api

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// answerSize stops an answer from growing past max bytes, whatever the
// cost model missed: each field adds about what it will write (its name and
// its value) to a count kept with the operation, and once the count passes
// max, no further field runs and the answer is replaced by one error.
//
// The count is an estimate made as fields resolve, before gqlgen writes
// them, so that the memory is never spent; it is close for the strings and
// lists that make up an answer's bulk.
type answerSize struct {
	max int64
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
	graphql.FieldInterceptor
	graphql.ResponseInterceptor
} = answerSize{}

// answerSizeStatsKey holds an operation's *answerCount in its stats.
const answerSizeStatsKey = "answerSize"

// answerCount is the size of an operation's answer so far.
type answerCount struct {
	bytes atomic.Int64
}

func (answerSize) ExtensionName() string                   { return "AnswerSize" }
func (answerSize) Validate(graphql.ExecutableSchema) error { return nil }

func (answerSize) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	opCtx.Stats.SetExtension(answerSizeStatsKey, &answerCount{})
	return nil
}

func (a answerSize) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	count, _ := graphql.GetOperationContext(ctx).Stats.GetExtension(answerSizeStatsKey).(*answerCount)
	if count == nil {
		return next(ctx)
	}
	if count.bytes.Load() > a.max {
		return nil, a.tooLarge()
	}
	res, err := next(ctx)
	fc := graphql.GetFieldContext(ctx)
	if count.bytes.Add(int64(len(fc.Field.Alias)+4+estimateSize(res))) > a.max {
		return nil, a.tooLarge()
	}
	return res, err
}

// tooLarge is a new error each time: gqlgen sets the path on it.
func (a answerSize) tooLarge() *gqlerror.Error {
	return &gqlerror.Error{
		Message:    fmt.Sprintf("the answer is larger than the limit of %d bytes", a.max),
		Extensions: map[string]any{"code": CodeComplexityLimitExceeded, "limit": a.max},
	}
}

// InterceptResponse replaces an answer that went over the limit, with its
// error on every field that did not run, by one error and no data.
func (a answerSize) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || !graphql.HasOperationContext(ctx) {
		return resp
	}
	count, _ := graphql.GetOperationContext(ctx).Stats.GetExtension(answerSizeStatsKey).(*answerCount)
	if count == nil || count.bytes.Load() <= a.max {
		return resp
	}
	return &graphql.Response{
		Data:       json.RawMessage("null"),
		Errors:     gqlerror.List{a.tooLarge()},
		Extensions: resp.Extensions,
	}
}

// estimateSize is about how many bytes v takes in JSON.
func estimateSize(v any) int {
	switch v := v.(type) {
	case nil:
		return 4
	case string:
		return len(v) + 2
	case *string:
		if v == nil {
			return 4
		}
		return len(*v) + 2
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice {
		return 2 + rv.Len()
	}
	return 8
}

// countAnswer adds n bytes to the answer of ctx's operation: those of a
// field whose own fields did not go through InterceptField (the fast path,
// fastpath.go). An answer that this takes over the limit is refused as
// any other, by InterceptResponse.
func countAnswer(ctx context.Context, n int) {
	if count, _ := graphql.GetOperationContext(ctx).Stats.GetExtension(answerSizeStatsKey).(*answerCount); count != nil {
		count.bytes.Add(int64(n))
	}
}
