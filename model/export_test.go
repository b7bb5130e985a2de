package model

import "context"

// InspectStatements makes s call f with every statement on the task table
// just before it is sent: its text, its bound values ($1 is args[0]) and
// the users it acts for. Only the tests can install it: the package's
// statements bypass Bun's query hooks (see owned.send).
func (s *Tasks) InspectStatements(f func(ctx context.Context, text string, args []any, users []string)) {
	s.inspect = f
}
