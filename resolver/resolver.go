// Package resolver implements the GraphQL schema as thin calls into the
// model's stores.
package resolver

import "github.com/taskql/server/model"

// Resolver is the root resolver: it holds the stores the fields call.
type Resolver struct {
	TaskStore *model.Tasks
	// Changes feeds the taskChanged subscription; nil refuses it.
	Changes ChangeFeed
}

// nonEmpty returns nil for a claim the token did not carry.
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
