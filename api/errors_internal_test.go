package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/taskql/server/model"
)

// TestPresentErrorClassifiesByCause feeds presentError errors wrapped the
// way gqlgen wraps them. Over HTTP an argument conversion error cannot be
// provoked (validation catches every bad value first), so this pins that
// branch directly; the HTTP tests cover the rest end to end.
func TestPresentErrorClassifiesByCause(t *testing.T) {
	field := graphql.WithPathContext(context.Background(), graphql.NewPathWithField("tasks"))
	argument := graphql.WithPathContext(field, graphql.NewPathWithField("orderBy"))
	dbErr := errors.New(`select tasks: sql: database is closed`)

	tests := []struct {
		name        string
		err         error
		wantCode    string
		wantMessage string
		wantField   string
		wantLogged  bool
	}{
		{
			name:        "a resolver's unexpected error wrapped on the field's path is masked",
			err:         graphql.ErrorOnPath(field, dbErr),
			wantCode:    CodeInternal,
			wantMessage: internalMessage,
			wantLogged:  true,
		},
		{
			name:        "a bare unexpected error is masked",
			err:         dbErr,
			wantCode:    CodeInternal,
			wantMessage: internalMessage,
			wantLogged:  true,
		},
		{
			name:        "a recovered panic is masked and not logged twice",
			err:         graphql.ErrorOnPath(field, errPanic),
			wantCode:    CodeInternal,
			wantMessage: internalMessage,
		},
		{
			name:        "an argument gqlgen could not convert is BAD_USER_INPUT",
			err:         graphql.ErrorOnPath(argument, &model.Error{Code: model.EINVALID, Field: "orderBy.field", Message: `"X" is not a TaskOrderField`}),
			wantCode:    CodeBadUserInput,
			wantMessage: `invalid orderBy.field: "X" is not a TaskOrderField`,
			wantField:   "orderBy.field",
		},
		{
			name:        "a missing row is NOT_FOUND with the model's message, through any wrapping",
			err:         graphql.ErrorOnPath(field, fmt.Errorf("select task: %w", model.Errorf(model.ENOTFOUND, "task not found"))),
			wantCode:    CodeNotFound,
			wantMessage: "task not found",
		},
		{
			name:        "a query without a viewer is UNAUTHENTICATED",
			err:         graphql.ErrorOnPath(field, model.Unauthenticated()),
			wantCode:    CodeUnauthenticated,
			wantMessage: "authentication required",
		},
		{
			name:        "a conflict is CONFLICT with its field, and its cause is not shown",
			err:         graphql.ErrorOnPath(field, &model.Error{Code: model.ECONFLICT, Field: "email", Message: "a user with this email already exists", Err: dbErr}),
			wantCode:    CodeConflict,
			wantMessage: "a user with this email already exists",
			wantField:   "email",
		},
		{
			name:        "a gap in the change stream is EVENTS_MISSED",
			err:         graphql.ErrorOnPath(field, model.EventsMissed(3)),
			wantCode:    CodeEventsMissed,
			wantMessage: "events missed: the client read too slowly, 3 events behind — refetch and resubscribe",
		},
		{
			name:        "the model's internal code is masked like any unexpected error",
			err:         graphql.ErrorOnPath(field, &model.Error{Code: model.EINTERNAL, Message: "select tasks: database is closed"}),
			wantCode:    CodeInternal,
			wantMessage: internalMessage,
			wantLogged:  true,
		},
		{
			name:        "gqlgen's own error keeps its message",
			err:         &gqlerror.Error{Message: "must not be null", Path: graphql.GetPath(field)},
			wantMessage: "must not be null",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			got := presentError(slog.New(slog.NewTextHandler(&logs, nil)))(field, tt.err)
			if got.Message != tt.wantMessage {
				t.Errorf("message = %q, want %q", got.Message, tt.wantMessage)
			}
			if code, _ := got.Extensions["code"].(string); code != tt.wantCode {
				t.Errorf("code = %q, want %q", code, tt.wantCode)
			}
			if field, _ := got.Extensions["field"].(string); field != tt.wantField {
				t.Errorf("field = %q, want %q", field, tt.wantField)
			}
			if logged := strings.Contains(logs.String(), "database is closed"); logged != tt.wantLogged {
				t.Errorf("cause logged = %v, want %v; log: %s", logged, tt.wantLogged, logs.String())
			}
			if fmt.Sprint(got.Path) == "" {
				t.Errorf("error has no path")
			}
		})
	}
}
