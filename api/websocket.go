package api

import (
	"context"
	"net/http"

	"github.com/taskql/server/graphqlws"
	"github.com/taskql/server/model"
	"github.com/taskql/server/resolver"
)

// newWebsocketTransport mounts package graphqlws, the server's own
// graphql-transport-ws (see its doc comment for why it is not gqlgen's),
// with what it needs from the HTTP surface: the one token path and its
// cache, the origin rule CORS uses, the request ids and the access log's
// user, errors presented as HTTP's are, and the metrics. cfg's Logger,
// MaxBodyBytes and Verifier (the token cache) are already set.
func newWebsocketTransport(cfg Config) *graphqlws.Transport {
	origins := newOriginPolicy(cfg.CORSAllowedOrigins)
	return &graphqlws.Transport{
		Authenticate: func(ctx context.Context, authorization string) (model.Viewer, error) {
			return verifyAuthorization(ctx, cfg.Verifier, authorization)
		},
		Accepted: func(ctx context.Context, v model.Viewer) { setUser(ctx, v.ID) },
		CheckOrigin: func(w http.ResponseWriter, r *http.Request) bool {
			if origins.allowsWebsocket(r) {
				return true
			}
			writeErrors(w, responseMediaType(r), http.StatusForbidden, "this origin may not open a websocket: add it to CORS_ALLOWED_ORIGINS")
			return false
		},
		Connections:         cfg.Websockets,
		KeepAlive:           cfg.WebsocketKeepAlive,
		InitTimeout:         cfg.WebsocketInitTimeout,
		ReadLimit:           cfg.MaxBodyBytes,
		Logger:              cfg.Logger,
		RequestID:           RequestID,
		ErrorPresenter:      presentError(cfg.Logger),
		Recover:             recoverPanic(cfg.Logger),
		SubscriptionStarted: cfg.Metrics.SubscriptionStarted,
		SubscriptionEnded:   cfg.Metrics.SubscriptionEnded,
		StreamEnd:           resolver.WithStreamEnd,
	}
}
