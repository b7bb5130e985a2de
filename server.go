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
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/joho/godotenv"
	"github.com/vektah/gqlparser/v2/formatter"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/config"
	"github.com/taskql/server/database"
	"github.com/taskql/server/graph"
	"github.com/taskql/server/model"
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

	bootCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := database.Open(bootCtx, cfg.Database)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer db.Close()
	if err := model.CreateSchema(bootCtx, db); err != nil {
		return err
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

	var draining atomic.Bool
	handler := api.New(api.Config{
		Tasks:    model.NewTasks(db),
		Verifier: verifier,
		Ready: func(ctx context.Context) error {
			if draining.Load() {
				return errors.New("shutting down")
			}
			return db.PingContext(ctx)
		},
		Logger:             log,
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		MaxBodyBytes:       cfg.MaxBodyBytes,
		IDE:                cfg.IDE,
		IDEToken:           ideToken,
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
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
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	if cfg.Env == config.Production {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
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
