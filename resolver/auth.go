package resolver

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/taskql/server/model"
)

// Auth implements the @auth directive: the field runs only when the request
// carries a verified user, whom the HTTP layer put in the context. The
// model reads the same user to scope every query, so this check is the
// early, explicit refusal rather than the only line of defence.
func Auth(ctx context.Context, obj any, next graphql.Resolver) (any, error) {
	if _, ok := model.ViewerFromContext(ctx); !ok {
		return nil, model.Unauthenticated()
	}
	return next(ctx)
}
