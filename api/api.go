// Package api is the server's HTTP surface: GraphQL over HTTP at /graphql
// with its limits and authentication, the IDE at /, and health checks.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/rs/cors"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskql/server/graph"
	"github.com/taskql/server/graphqlws"
	"github.com/taskql/server/ide"
	"github.com/taskql/server/model"
	"github.com/taskql/server/resolver"
	"github.com/taskql/server/telemetry"
)

// TokenVerifier checks a bearer token and says whom it speaks for.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (model.Viewer, error)
}

// Config is what the HTTP surface needs. Zero values are usable except
// Tasks and Verifier.
type Config struct {
	Tasks    *model.Tasks
	Verifier TokenVerifier
	// Ready reports whether the server can serve: it is not shutting
	// down and its last database work succeeded. It is called on every
	// probe of /readyz, so it must not query an idle database (CONTRACT
	// §3; see model.Health). Nil means always ready.
	Ready func(context.Context) error
	// Logger receives access and error logs; nil means slog.Default().
	Logger *slog.Logger
	// CORSAllowedOrigins are the origins browsers may call from and open
	// a websocket from (besides the server's own); "*" allows any (without
	// credentials), and an empty list none.
	CORSAllowedOrigins []string
	// AllowedHosts are the Host header values the server answers (see
	// CheckAllowedHost); others get 421 Misdirected Request, which guards
	// against DNS rebinding. Empty answers any host.
	AllowedHosts []string
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// IDE serves GraphiQL at /.
	IDE bool
	// IDEToken, when set, is put in the IDE's Authorization header: a
	// development convenience, never set in production.
	IDEToken string
	// Changes feeds the taskChanged subscription: the event bus the
	// store publishes to. Nil refuses subscriptions.
	Changes resolver.ChangeFeed
	// Websockets, when set, tracks websocket connections so that a
	// shutdown can close them (see graphqlws.Connections.Shutdown).
	Websockets *graphqlws.Connections
	// WebsocketKeepAlive is how often a websocket is pinged; a peer that
	// does not answer within as long is dropped. Zero means 15s.
	WebsocketKeepAlive time.Duration
	// WebsocketInitTimeout is how long a websocket may wait before its
	// connection_init. Zero means 10s.
	WebsocketInitTimeout time.Duration
	// Limits bounds what one request may make the server do.
	Limits Limits
	// Metrics, when not nil, records the server's metrics and serves them
	// at /metrics; MetricsToken, when set, is the bearer token it asks for.
	Metrics      *Metrics
	MetricsToken string
	// TracerProvider, when not nil, traces each request, operation and
	// root field (see package telemetry); nil traces nothing.
	TracerProvider trace.TracerProvider

	// fastPath is set by tests only (export_test.go): fastpath.go.
	fastPath fastPathConfig
}

// exampleQuery is what the IDE shows first.
const exampleQuery = `# Welcome to the Tasks API. Press the run button (or Ctrl-Enter).
mutation Add {
  createTask(input: { title: "Try the Tasks API" }) { id title completed createdAt }
}

query MyTasks {
  me { id email name }
  tasks(first: 20) {
    nodes { id title description completed createdAt updatedAt }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
  taskStats { total completed active }
}
`

// New returns the server's HTTP handler.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	// One token cache for HTTP requests and websocket connections, so a
	// token verified by either is verified once (see verifyAuthorization).
	cfg.Verifier = newTokenCache(cfg.Verifier)

	es := graph.NewExecutableSchema(graph.Config{
		Resolvers:  &resolver.Resolver{TaskStore: cfg.Tasks, Changes: cfg.Changes},
		Directives: graph.DirectiveRoot{Auth: resolver.Auth},
		Complexity: fieldCosts(),
	})
	gql := handler.New(es)
	// postTransport answers @defer incrementally to clients that accept
	// multipart/mixed (Apollo Client asks for it when a query defers) and
	// refuses @defer from the others instead of dropping the deferred
	// fields.
	gql.AddTransport(postTransport{})
	gql.AddTransport(getTransport{})
	gql.AddTransport(newWebsocketTransport(cfg))
	// Parsing and validating a document costs more than running a small
	// query: keep the parsed form of recent documents.
	queryCache := lru.New[*ast.QueryDocument](1000)
	gql.SetQueryCache(queryCache)
	limits := cfg.Limits.withDefaults()
	// First, so that no other extension sees a variable the operation
	// would not run with.
	gql.Use(&strictScalars{})
	if cfg.TracerProvider != nil {
		gql.Use(telemetry.NewExtension(cfg.TracerProvider)) // outside the others, to time them
	}
	if !limits.DisableIntrospection {
		gql.Use(extension.Introspection{})
	}
	gql.SetParserTokenLimit(limits.MaxTokens)
	gql.SetDisableSuggestion(limits.DisableSuggestions)
	gql.SetValidationRulesFn(validationRules(limits.DisableSuggestions))
	gql.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	// In this order: the bounds see the document a persisted query
	// names; the budget spends the cost the limits measured.
	gql.Use(selectionBounds{maxSelections: limits.MaxSelections, maxSetSelections: limits.MaxSetSelections,
		maxTokens: limits.MaxTokens, cache: queryCache})
	gql.Use(newQueryLimits(es, limits))
	gql.Use(newCostBudget(limits.CostRefill, limits.CostBudget))
	gql.Use(answerSize{max: int64(limits.MaxResponseBytes)})
	useFastPath(gql, cfg.fastPath) // after answerSize: see fastpath.go
	gql.Use(costReporter{})
	gql.AroundOperations(executionTimeout(limits.ExecutionTimeout))
	gql.Use(operationObserver{metrics: cfg.Metrics})
	gql.SetErrorPresenter(presentError(cfg.Logger))
	gql.SetRecoverFunc(recoverPanic(cfg.Logger))

	mux := http.NewServeMux()
	mux.Handle("/graphql", graphqlOnly(cfg.MaxBodyBytes, authenticate(cfg.Verifier, gql)))
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics.handler(cfg.MetricsToken))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := cfg.Ready(ctx); err != nil {
				cfg.Logger.WarnContext(ctx, "not ready", "request_id", RequestID(ctx), "error", err)
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ok\n"))
	})
	if cfg.IDE {
		ideCfg := ide.Config{Title: "Tasks GraphQL", Endpoint: "/graphql", Query: exampleQuery}
		if cfg.IDEToken != "" {
			ideCfg.Headers = map[string]string{"Authorization": "Bearer " + cfg.IDEToken}
		}
		h := ide.Handler(ideCfg)
		mux.Handle("GET /{$}", h)
		mux.Handle("GET "+ide.AssetPrefix, h)
	}

	corsOptions := cors.Options{
		AllowedMethods: []string{http.MethodGet, http.MethodPost},
		AllowedHeaders: []string{"Authorization", "Content-Type", "Accept", "X-Request-Id", "Apollo-Require-Preflight"},
		ExposedHeaders: []string{"X-Request-Id"},
		MaxAge:         600,
	}
	newOriginPolicy(cfg.CORSAllowedOrigins).corsOrigins(&corsOptions)
	c := cors.New(corsOptions)
	// The Host is checked first: a request for another host name must
	// not reach anything, the IDE and its token least of all.
	return checkHost(newHostPolicy(cfg.AllowedHosts),
		withRequestID(telemetry.Handler(cfg.TracerProvider, RequestID, logRequests(cfg.Logger, cfg.Metrics, c.Handler(mux)))))
}

// graphqlOnly refuses what /graphql does not serve before gqlgen sees it:
// methods other than GET and POST, bodies that are not JSON (forms and
// multipart are how a cross-site page posts without a preflight), and
// bodies over max bytes.
func graphqlOnly(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		media := responseMediaType(r)
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost:
			ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
			if !strings.EqualFold(strings.TrimSpace(ct), mediaJSON) {
				writeErrors(w, media, http.StatusUnsupportedMediaType, "the body must be application/json")
				return
			}
			if r.ContentLength > max {
				writeErrors(w, media, http.StatusRequestEntityTooLarge, "the body is too large")
				return
			}
			body, err := readBody(r, max)
			if err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					writeErrors(w, media, http.StatusRequestEntityTooLarge, "the body is too large")
				} else {
					writeErrors(w, media, http.StatusBadRequest, "the body could not be read")
				}
				return
			}
			r.Body = body
		default:
			w.Header().Set("Allow", "GET, POST")
			writeErrors(w, media, http.StatusMethodNotAllowed, "use GET or POST")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authenticate verifies the bearer token, when there is one, and puts its
// user in the request's context for @auth fields. A request without a
// token goes on (it may introspect); a request whose token fails
// verification is refused outright with 401, so a client notices an
// expired session instead of seeing empty results.
func authenticate(v TokenVerifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := r.Header.Get("Authorization")
		if header == "" {
			next.ServeHTTP(w, r)
			return
		}
		viewer, err := verifyAuthorization(r.Context(), v, header)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeErrors(w, responseMediaType(r), http.StatusUnauthorized, "invalid token",
				map[string]any{"code": CodeUnauthenticated})
			return
		}
		setUser(r.Context(), viewer.ID)
		next.ServeHTTP(w, r.WithContext(model.NewContext(r.Context(), viewer)))
	})
}
