package model

import (
	"errors"
	"fmt"
)

// The errors of the application. The GraphQL layer maps them to
// extensions.code in one place; anything else is an internal error.
var (
	// ErrNotFound reports a task that does not exist or belongs to another
	// user: the two are deliberately indistinguishable.
	ErrNotFound = errors.New("task not found")
	// ErrUnauthenticated reports a query attempted without a viewer in the context.
	ErrUnauthenticated = errors.New("authentication required")
)

// InvalidInputError reports input that fails validation. Field names the
// GraphQL argument or input field at fault, as a client spells it.
type InvalidInputError struct {
	Field   string
	Message string
}

func (e *InvalidInputError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Message)
}

func invalid(field, format string, args ...any) error {
	return &InvalidInputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// ConflictError reports a write refused by a uniqueness rule, such as a
// second user with the same email.
type ConflictError struct {
	Field   string
	Message string
	Err     error
}

func (e *ConflictError) Error() string { return e.Message }

// Unwrap returns the database error behind the conflict, for logs.
func (e *ConflictError) Unwrap() error { return e.Err }
