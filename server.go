// Command server is the Task GraphQL server: a per-user task list over
// GraphQL, backed by PostgreSQL or an embedded SQLite file.
//
//	server            serve the API (the default)
//	server token      print a development token (--sub, --email, --name, --ttl)
//	server schema     print the GraphQL schema (SDL)
//
// Configuration comes from the environment and from a .env file in the
// working directory; see README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/joho/godotenv"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/vektah/gqlparser/v2/formatter"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/config"
	"github.com/taskql/server/database"
	"github.com/taskql/server/events"
	"github.com/taskql/server/graph"
	"github.com/taskql/server/graphqlws"
	"github.com/taskql/server/memory"
	"github.com/taskql/server/model"
	"github.com/taskql/server/postgres"
	"github.com/taskql/server/telemetry"
)

func main() {
	// A missing .env is normal; real environment variables win over it.
	_ = godotenv.Load()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run is the whole program; ctx is cancelled by SIGINT or SIGTERM.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, getenv, stderr)
	case "token":
		return printToken(args, getenv, stdout, stderr)
	case "schema":
		return printSchema(stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, "usage: server [serve | token --sub ID [--email E] [--name N] [--ttl D] | schema]")
		return nil
	}
	return fmt.Errorf("unknown command %q: want serve, token or schema", cmd)
}

func serve(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	// The runtime read GOGC from the process environment at start; this
	// applies the server's default, or GOGC from a .env file.
	debug.SetGCPercent(cfg.GCPercent)
	go memory.ReleaseWhenIdle(ctx)

	bootCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Traces, when an OTEL_EXPORTER_OTLP_* endpoint is set: flushed last,
	// after the requests that shutdown waits for.
	tracing, flushTraces, err := telemetry.Start(bootCtx, getenv)
	if err != nil {
		return err
	}
	defer flushSpans(flushTraces, log)
	dbConfig := cfg.Database
	dbConfig.Logger = log
	if tracing != nil {
		dbConfig.Tracer = telemetry.NewSQLTracer(tracing)
	}
	db, err := database.Open(bootCtx, dbConfig)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer db.Close()
	// LISTEN needs a connection of its own: refuse a direct URL that goes
	// through a transaction-mode pooler now, rather than lose events later.
	if db.Dialect().Name() == dialect.PG {
		if err := database.CheckDirect(bootCtx, cfg.DirectURL); err != nil {
			if getenv("DATABASE_DIRECT_URL") == "" {
				return fmt.Errorf("DATABASE_DIRECT_URL: not set, so LISTEN uses DATABASE_URL: %w", err)
			}
			return fmt.Errorf("DATABASE_DIRECT_URL: %w", err)
		}
	}
	if err := model.CreateSchema(bootCtx, db); err != nil {
		return err
	}
	if cfg.PprofAddr != "" {
		if err := servePprof(ctx, cfg.PprofAddr, log); err != nil {
			return err
		}
	}
	verifier, err := auth.New(ctx, cfg.Auth)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}

	var ideToken string
	if cfg.DevSecret {
		ideToken, err = auth.Mint(cfg.Auth.Secret, auth.MintClaims{
			Subject: "dev-user", Name: "Development User", Email: "dev@example.com",
			Issuer: cfg.Auth.Issuer, Audience: cfg.Auth.Audience, TTL: 30 * 24 * time.Hour,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "development: no token verification is configured, so tokens are signed with the secret in %s.\n"+
			"A token for user dev-user (valid 30 days; the IDE already sends it):\n\n  Authorization: Bearer %s\n\n"+
			"Mint others with: go run . token --sub alice\n\n", config.DevSecretFile, ideToken)
	}

	var metrics *api.Metrics
	if cfg.MetricsEnabled {
		metrics = api.NewMetrics(db.DB)
	}
	// Mutations run through the event bus's writer, which carries their
	// committed changes to the taskChanged subscriptions.
	tasks := model.NewTasks(db)
	bus, err := newEventBus(bootCtx, cfg, db, tasks.Health(), log)
	if err != nil {
		return err
	}
	defer bus.Close()
	tasks.WriteWith(bus.Writer())
	var websockets graphqlws.Connections

	var draining atomic.Bool
	handler := api.New(api.Config{
		Tasks:    tasks,
		Verifier: verifier,
		// Readiness answers from what the last request's statements saw,
		// so that probes of an idle server never wake a serverless
		// database; it pings only after a failure (model.Health).
		Ready: func(ctx context.Context) error {
			if draining.Load() {
				return errors.New("shutting down")
			}
			return tasks.Health().Ready(ctx)
		},
		Logger:             log,
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		AllowedHosts:       cfg.AllowedHosts,
		MaxBodyBytes:       cfg.MaxBodyBytes,
		IDE:                cfg.IDE,
		IDEToken:           ideToken,
		Changes:            bus,
		Websockets:         &websockets,
		Limits:             cfg.Limits,
		Metrics:            metrics,
		MetricsToken:       cfg.MetricsToken,
		TracerProvider:     tracing,
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.HTTP.ReadHeader,
		ReadTimeout:       cfg.HTTP.Read,
		WriteTimeout:      cfg.HTTP.Write,
		IdleTimeout:       cfg.HTTP.Idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	log.Info("listening", "url", "http://"+ln.Addr().String(), "env", cfg.Env, "database", db.Dialect().Name().String())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}

	// Fail readiness first so a load balancer stops sending work, then let
	// in-flight requests finish.
	draining.Store(true)
	log.Info("shutting down", "grace", cfg.ShutdownTimeout)
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelShutdown()
	// srv.Shutdown neither closes nor waits for websockets (their
	// connections were taken over): close them alongside, with 1001, so
	// their clients reconnect to another instance at once.
	websocketsClosed := make(chan error, 1)
	go func() { websocketsClosed <- websockets.Shutdown(shutdownCtx) }()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-websocketsClosed; err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// newEventBus returns the event bus for the database: in process on
// SQLite, where one instance serves; PostgreSQL's LISTEN/NOTIFY on the
// direct URL otherwise, so that every instance hears every change. The
// PostgreSQL bus listens only while it has subscribers, and reports to
// health whether opening LISTEN worked.
func newEventBus(ctx context.Context, cfg *config.Config, db *bun.DB, health *model.Health, log *slog.Logger) (events.Bus, error) {
	if db.Dialect().Name() != dialect.PG {
		return &events.Local{}, nil
	}
	bus := &postgres.Bus{URL: cfg.DirectURL, Logger: log, Health: health}
	if err := bus.Start(ctx); err != nil {
		return nil, fmt.Errorf("DATABASE_DIRECT_URL: %w", err)
	}
	return bus, nil
}

// flushSpans sends the spans not yet exported and stops the tracer
// provider, giving the collector a few seconds.
func flushSpans(flush func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := flush(ctx); err != nil {
		log.Warn("traces not flushed", "error", err)
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.Env == config.Production {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// servePprof serves net/http/pprof on addr, apart from the API, until ctx
// ends: how bench/README.md profiles a running server.
func servePprof(ctx context.Context, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("PPROF_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	context.AfterFunc(ctx, func() { srv.Close() })
	log.Warn("pprof listening: profiles reveal internals, keep PPROF_ADDR off the public network", "addr", ln.Addr().String())
	return nil
}

// printToken mints an HS256 token with the configured secret, for curl and
// tests. Production never mints tokens.
func printToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	// The flag package would write usage and errors to os.Stderr, past
	// the writer run was given.
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "user id (the token's subject); required")
	email := fs.String("email", "", "email claim")
	name := fs.String("name", "", "name claim")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // usage was asked for, and printed
		}
		return fmt.Errorf("token: %w", err)
	}
	if *sub == "" {
		return errors.New("token: --sub is required")
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	if cfg.Env == config.Production {
		return errors.New("APP_ENV: token minting is a development tool and is disabled in production")
	}
	if len(cfg.Auth.Secret) == 0 {
		return errors.New("AUTH_JWT_SECRET: must be set to mint tokens when a JWKS is configured")
	}
	token, err := auth.Mint(cfg.Auth.Secret, auth.MintClaims{
		Subject: *sub, Email: *email, Name: *name,
		Issuer: cfg.Auth.Issuer, Audience: cfg.Auth.Audience, TTL: *ttl,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}

// printSchema writes the schema the server serves, for tooling.
func printSchema(stdout io.Writer) error {
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	formatter.NewFormatter(stdout, formatter.WithIndent("  ")).FormatSchema(schema)
	return nil
}
