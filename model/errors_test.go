package model_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/taskql/server/model"
)

func TestErrorsSayTheirCodeThroughWrappingAndTheirMessageToClients(t *testing.T) {
	t.Parallel()
	cause := errors.New("UNIQUE constraint failed: user.email")
	tests := []struct {
		name        string
		err         error
		wantCode    string
		wantMessage string
	}{
		{"no error has no code", nil, "", ""},
		{"an error of another type is internal", errors.New("connection refused"), model.EINTERNAL, "connection refused"},
		{"invalid input names its field", &model.Error{Code: model.EINVALID, Field: "title", Message: "must not be empty"},
			model.EINVALID, "invalid title: must not be empty"},
		{"a wrapped error keeps its code", fmt.Errorf("select task: %w", model.Errorf(model.ENOTFOUND, "task not found")),
			model.ENOTFOUND, "select task: task not found"},
		{"a conflict shows its message, not its cause",
			&model.Error{Code: model.ECONFLICT, Field: "email", Message: "a user with this email already exists", Err: cause},
			model.ECONFLICT, "a user with this email already exists"},
		{"a query without a viewer", model.Unauthenticated(), model.EUNAUTHENTICATED, "authentication required"},
		{"a client that read too slowly", model.EventsMissed(2), model.EEVENTSMISSED,
			"events missed: the client read too slowly, 2 events behind — refetch and resubscribe"},
		{"the server's gap", model.EventsMissed(0), model.EEVENTSMISSED,
			"events missed: the server lost its connection to the change stream — refetch and resubscribe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := model.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode = %q, want %q", got, tt.wantCode)
			}
			if tt.err != nil && tt.err.Error() != tt.wantMessage {
				t.Errorf("Error() = %q, want %q", tt.err.Error(), tt.wantMessage)
			}
		})
	}
	conflict := &model.Error{Code: model.ECONFLICT, Err: cause}
	if !errors.Is(conflict, cause) {
		t.Error("a conflict does not unwrap to its database error, which the logs need")
	}
}
