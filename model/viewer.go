package model

import (
	"context"
	"time"
)

// Viewer is the authenticated user a request acts for, as described by the
// verified token. Every task query reads it from the context, so a resolver
// cannot forget to scope its query to the caller.
type Viewer struct {
	// ID is the token's subject: the user's id in the auth service.
	ID string
	// Email and Name come from the token's claims and are empty when absent.
	Email string
	Name  string
	// ExpiresAt is when the token stops being valid (its exp claim); the
	// zero time when unknown. A websocket connection ends then, since it
	// outlives the request that verified the token.
	ExpiresAt time.Time
}

type viewerKey struct{}

// NewContext returns a copy of ctx that carries v.
func NewContext(ctx context.Context, v Viewer) context.Context {
	return context.WithValue(ctx, viewerKey{}, v)
}

// ViewerFromContext returns the viewer stored in ctx by NewContext.
func ViewerFromContext(ctx context.Context) (Viewer, bool) {
	v, ok := ctx.Value(viewerKey{}).(Viewer)
	return v, ok && v.ID != ""
}

// viewerID returns the id of the viewer in ctx, or an EUNAUTHENTICATED error.
func viewerID(ctx context.Context) (string, error) {
	v, ok := ViewerFromContext(ctx)
	if !ok {
		return "", Unauthenticated()
	}
	return v.ID, nil
}
