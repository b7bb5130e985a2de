package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/taskql/server/model"
)

// The error codes of the API (extensions.code) that gqlgen does not set
// itself.
const (
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeNotFound        = "NOT_FOUND"
	CodeConflict        = "CONFLICT"
	CodeInternal        = "INTERNAL_SERVER_ERROR"

	// CodeEventsMissed ends a subscription whose change stream had a gap
	// the server cannot replay (the client read too slowly, or the server
	// lost its LISTEN connection): the client should refetch and
	// resubscribe.
	CodeEventsMissed = "EVENTS_MISSED"
)

// internalMessage is all a client learns of an unexpected error; the
// details are logged under the request id the client also receives.
const internalMessage = "internal server error"

// errPanic marks a panic already logged, with its stack, by recoverPanic.
var errPanic = errors.New("panic in resolver")

// presentError is the one place where the application's errors become
// GraphQL errors with a code: a *model.Error keeps its message and its
// field, and its code becomes extensions.code through apiCode. Errors gqlgen made itself (parsing,
// validation, arguments) already carry a message meant for the client;
// anything it does not recognize is masked and logged.
//
// gqlgen hands every error a resolver returns (and a recovered panic) to
// the presenter wrapped in a *gqlerror.Error whose Err is the cause, so a
// *gqlerror.Error is not by itself one of gqlgen's own: the cause decides.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := &gqlerror.Error{Path: graphql.GetPath(ctx)}
		var (
			app   *model.Error
			known *gqlerror.Error
		)
		if errors.As(err, &known) {
			// Keep where gqlgen says the error happened.
			if known.Path != nil {
				gqlErr.Path = known.Path
			}
			gqlErr.Locations = known.Locations
		}
		code, ok := "", false
		if errors.As(err, &app) {
			code, ok = apiCode(app.Code)
		}
		switch {
		case ok:
			gqlErr.Message = app.Error()
			gqlErr.Extensions = map[string]any{"code": code}
			if app.Field != "" {
				gqlErr.Extensions["field"] = app.Field
			}
		case known != nil && known.Err == nil:
			// An error gqlgen made itself, about the client's document
			// (parse, validation, a null where the schema forbids it).
			return known
		case timedOut(ctx) && !errors.Is(err, errPanic):
			// Whatever failed, it failed because the operation ran out of
			// time (the database query was cancelled); the cause is logged.
			id := RequestID(ctx)
			log.WarnContext(ctx, "execution timeout", "request_id", id, "path", gqlErr.Path.String(), "error", err)
			gqlErr.Message = "the operation took too long and was cancelled"
			gqlErr.Extensions = map[string]any{"code": CodeTimeout, "requestId": id}
		default:
			// A resolver's unexpected error (the database, a bug) or a
			// panic: its text may hold SQL or driver details.
			id := RequestID(ctx)
			if !errors.Is(err, errPanic) {
				log.ErrorContext(ctx, "internal error", "request_id", id, "path", gqlErr.Path.String(), "error", err)
			}
			gqlErr.Message = internalMessage
			gqlErr.Extensions = map[string]any{"code": CodeInternal, "requestId": id}
		}
		return gqlErr
	}
}

// apiCode returns the extensions.code of the model's error code, or false
// for a code a client is not told about (EINTERNAL), which presentError
// masks like any unexpected error. A switch rather than a map, so that
// the table is not package state anyone could change.
func apiCode(code string) (string, bool) {
	switch code {
	case model.EINVALID:
		return CodeBadUserInput, true
	case model.ENOTFOUND:
		return CodeNotFound, true
	case model.EUNAUTHENTICATED:
		return CodeUnauthenticated, true
	case model.ECONFLICT:
		return CodeConflict, true
	case model.EEVENTSMISSED:
		return CodeEventsMissed, true
	}
	return "", false
}

// recoverPanic turns a panic in a resolver into an internal error for the
// client and a log entry with the stack, instead of a crashed process.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic", "request_id", RequestID(ctx), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errPanic
	}
}
