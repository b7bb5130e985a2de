package model

import (
	"errors"
	"fmt"
)

// The codes of the application's errors (Error.Code). The GraphQL layer
// maps each to an extensions.code in one place (api's presentError);
// anything that is not an *Error is internal, shown to no client and only
// logged.
const (
	// EINVALID is input that fails validation; Field names the argument
	// or input field at fault.
	EINVALID = "invalid"
	// ENOTFOUND is a row that does not exist or belongs to another user:
	// the two are deliberately indistinguishable.
	ENOTFOUND = "not_found"
	// EUNAUTHENTICATED is a query attempted without a viewer in the
	// context.
	EUNAUTHENTICATED = "unauthenticated"
	// ECONFLICT is a write refused by a uniqueness rule, such as a second
	// user with the same email; Field names the value at fault.
	ECONFLICT = "conflict"
	// EEVENTSMISSED ends a subscription whose stream of changes had a gap
	// the server cannot replay: the client read too slowly and its buffer
	// overflowed, or the server lost its LISTEN connection to the
	// database, where changes committed meanwhile were never heard. Rather
	// than carry on with a hole the client cannot see, the server ends the
	// subscription; the client should fetch its tasks again and
	// resubscribe (CONTRACT §6, EVENTS_MISSED).
	EEVENTSMISSED = "events_missed"
	// EINTERNAL is any other failure (the database, a bug); ErrorCode
	// reports it for an error that is not an *Error.
	EINTERNAL = "internal"
)

// Error is the one error type of the application, after WTF Dial's: Code
// says what kind of failure it is, for callers to branch on (ErrorCode),
// and Message is written for the client.
type Error struct {
	// Code is one of the E… constants.
	Code string
	// Field names the GraphQL argument or input field at fault, as a
	// client spells it; empty when no one field is.
	Field string
	// Message says what went wrong, for the client.
	Message string
	// Err is the cause, for logs only (a conflict's database error).
	Err error
}

// Error returns the text a client reads: invalid input names its field.
func (e *Error) Error() string {
	if e.Code == EINVALID && e.Field != "" {
		return fmt.Sprintf("invalid %s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Unwrap returns the cause, for logs.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of code with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for a
// nil err and EINTERNAL for any other error.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	}
	return EINTERNAL
}

// Unauthenticated returns the error of a query attempted without a viewer.
func Unauthenticated() error {
	return Errorf(EUNAUTHENTICATED, "authentication required")
}

// EventsMissed returns the error that ends a subscription with a gap (see
// EEVENTSMISSED): behind is how many events were waiting for a client that
// read too slowly, zero when the gap is the server's (its LISTEN
// connection dropped).
func EventsMissed(behind int) error {
	if behind > 0 {
		return Errorf(EEVENTSMISSED, "events missed: the client read too slowly, %d events behind — refetch and resubscribe", behind)
	}
	return Errorf(EEVENTSMISSED, "events missed: the server lost its connection to the change stream — refetch and resubscribe")
}

// notFound returns the error of a missing row of the table what: a task
// that does not exist or is another user's.
func notFound(what string) error {
	return Errorf(ENOTFOUND, "%s not found", what)
}

// invalid returns the error of input that fails validation in field.
func invalid(field, format string, args ...any) error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}
