package telemetry

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The attributes of GraphQL spans: OpenTelemetry's semantic conventions
// name the operation's; the others are this server's.
const (
	OperationNameKey = attribute.Key("graphql.operation.name")
	OperationTypeKey = attribute.Key("graphql.operation.type")
	// OperationCostKey is the cost the operation was charged, as
	// extensions.cost.requested reports it.
	OperationCostKey = attribute.Key("graphql.operation.cost")
	// ErrorCodesKey lists the distinct extensions.code values of the
	// errors answered, in their order.
	ErrorCodesKey = attribute.Key("graphql.error.codes")
	FieldNameKey  = attribute.Key("graphql.field.name")
	FieldAliasKey = attribute.Key("graphql.field.alias")
	FieldTypeKey  = attribute.Key("graphql.field.parent_type")
)

// costExtension is the key of the cost report in an answer's extensions.
const costExtension = "cost"

// Extension is the gqlgen handler extension that makes a span per
// operation, named "query Name" (the type alone for an anonymous one),
// with its cost and error codes, and a span per root field below it, where
// the resolvers' SQL spans go. Operations refused before they ran (a
// document that does not parse or validate, one over the limits) get a
// span too. Other fields cost nothing: there is no field interceptor.
type Extension struct {
	tracer trace.Tracer
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.RootFieldInterceptor
	graphql.ResponseInterceptor
} = (*Extension)(nil)

// NewExtension returns the extension, making its spans with tp.
func NewExtension(tp trace.TracerProvider) *Extension {
	return &Extension{tracer: tp.Tracer(instrumentation)}
}

func (*Extension) ExtensionName() string                   { return "Telemetry" }
func (*Extension) Validate(graphql.ExecutableSchema) error { return nil }

type operationKey struct{}

// operation is the span of one operation while it answers.
type operation struct {
	span         trace.Span
	subscription bool

	mu       sync.Mutex
	codes    []string
	answered bool
	ended    bool
}

// InterceptOperation starts the operation's span and ends it with the
// last answer: the only one, the last part of a @defer stream, or the end
// of a subscription; or, should a transport stop asking, when the
// operation's context ends.
func (e *Extension) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	ctx, op := e.start(ctx, graphql.GetOperationContext(ctx))
	stop := context.AfterFunc(ctx, op.end)
	h := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := h(ctx)
		op.observe(resp)
		if resp == nil || !op.subscription && (resp.HasNext == nil || !*resp.HasNext) {
			stop()
			op.end()
		}
		return resp
	}
}

// InterceptResponse traces the operations InterceptOperation never sees:
// those refused before they ran. It lets the others through.
func (e *Extension) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if ctx.Value(operationKey{}) != nil || !graphql.HasOperationContext(ctx) {
		return next(ctx)
	}
	ctx, op := e.start(ctx, graphql.GetOperationContext(ctx))
	resp := next(ctx)
	op.observe(resp)
	op.end()
	return resp
}

// start begins the span of the operation opCtx describes. It starts when
// the request was read, so that parsing, validation and the limits are in
// it.
func (e *Extension) start(ctx context.Context, opCtx *graphql.OperationContext) (context.Context, *operation) {
	name := "GraphQL Operation" // a document that did not parse or validate
	var attrs []attribute.KeyValue
	subscription := false
	if op := opCtx.Operation; op != nil {
		name = string(op.Operation)
		attrs = append(attrs, OperationTypeKey.String(string(op.Operation)))
		if op.Name != "" {
			name += " " + op.Name
			attrs = append(attrs, OperationNameKey.String(op.Name))
		}
		subscription = op.Operation == ast.Subscription
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(requestAttrs(ctx, attrs...)...)}
	if start := startTime(opCtx); !start.IsZero() {
		opts = append(opts, trace.WithTimestamp(start))
	}
	ctx, span := e.tracer.Start(ctx, name, opts...)
	op := &operation{span: span, subscription: subscription}
	return context.WithValue(ctx, operationKey{}, op), op
}

func startTime(opCtx *graphql.OperationContext) time.Time {
	if t := opCtx.Stats.OperationStart; !t.IsZero() {
		return t
	}
	return opCtx.Stats.Read.Start
}

// observe records what an answer tells: the cost (reported on the first
// one) and the codes of its errors.
func (op *operation) observe(resp *graphql.Response) {
	if resp == nil {
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if !op.answered {
		op.answered = true
		if cost, ok := requestedCost(resp.Extensions); ok {
			op.span.SetAttributes(OperationCostKey.Int(cost))
		}
	}
	op.codes = appendCodes(op.codes, resp.Errors)
}

func (op *operation) end() {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.ended {
		return
	}
	op.ended = true
	if len(op.codes) > 0 {
		op.span.SetAttributes(ErrorCodesKey.StringSlice(op.codes))
		op.span.SetStatus(codes.Error, strings.Join(op.codes, ", "))
	}
	op.span.End()
}

// CostReport is what an answer's extensions.cost holds (package api's
// report), as the span reads it.
type CostReport interface {
	// RequestedCost is the cost the operation was charged,
	// extensions.cost.requested.
	RequestedCost() int
}

// requestedCost reads the cost of extensions.cost, which the API reports
// on every costed answer.
func requestedCost(ext map[string]any) (int, bool) {
	report, ok := ext[costExtension].(CostReport)
	if !ok {
		return 0, false
	}
	return report.RequestedCost(), true
}

// appendCodes adds the extensions.code of each error to codes, once each;
// an error without one counts as UNKNOWN, as the metrics count it.
func appendCodes(list []string, errs []*gqlerror.Error) []string {
	for _, e := range errs {
		code, _ := e.Extensions["code"].(string)
		if code == "" {
			code = "UNKNOWN"
		}
		if !slices.Contains(list, code) {
			list = append(list, code)
		}
	}
	return list
}

// InterceptRootField makes the span of a root field, around its resolver
// and everything below it, with the codes of the errors under it.
func (e *Extension) InterceptRootField(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	rc := graphql.GetRootFieldContext(ctx)
	if rc == nil || rc.Field.Field == nil {
		return next(ctx)
	}
	// gqlgen puts the field's name in RootFieldContext.Object; the root
	// type is the field context's object.
	parent := "Query"
	if fc := graphql.GetFieldContext(ctx); fc != nil && fc.Object != "" {
		parent = fc.Object
	}
	field := rc.Field
	attrs := []attribute.KeyValue{FieldNameKey.String(field.Name), FieldTypeKey.String(parent)}
	if field.Alias != "" && field.Alias != field.Name {
		attrs = append(attrs, FieldAliasKey.String(field.Alias))
	}
	ctx, span := e.tracer.Start(ctx, parent+"."+field.Name, trace.WithAttributes(requestAttrs(ctx, attrs...)...))
	defer span.End()
	res := next(ctx)
	var mine []*gqlerror.Error
	for _, err := range graphql.GetErrors(ctx) {
		if len(err.Path) > 0 && err.Path[0] == ast.PathName(field.Alias) {
			mine = append(mine, err)
		}
	}
	if found := appendCodes(nil, mine); len(found) > 0 {
		span.SetAttributes(ErrorCodesKey.StringSlice(found))
		span.SetStatus(codes.Error, strings.Join(found, ", "))
	}
	return res
}
