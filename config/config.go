// Package config reads the server's configuration from the environment.
// Every problem is reported as one line that names the variable at fault.
package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/database"
)

// The two environments.
const (
	Development = "development"
	Production  = "production"
)

// DevSecretFile is where a development server keeps the HS256 secret it
// creates when no token verification is configured, so that tokens minted
// by `token` survive restarts.
const DevSecretFile = ".dev-jwt-secret"

// Config is the server's configuration.
type Config struct {
	// Env is Development or Production.
	Env string
	// ListenAddr is the TCP address to listen on.
	ListenAddr string
	// Database is how to open the database named by DATABASE_URL.
	Database database.Config
	// DirectURL is a non-pooled URL for what a transaction-mode pooler
	// cannot do (LISTEN/NOTIFY): DATABASE_DIRECT_URL, else derived from
	// DATABASE_URL (DirectURL). Neon's pooled host is refused here; the
	// server refuses any other pooler at boot (database.CheckDirect).
	DirectURL string
	// Auth is how tokens are verified.
	Auth auth.Config
	// DevSecret is true when Auth.Secret was created for development
	// because nothing else was configured.
	DevSecret bool
	// CORSAllowedOrigins are the browser origins allowed to call the API.
	CORSAllowedOrigins []string
	// AllowedHosts are the Host header values the server answers
	// (ALLOWED_HOSTS); empty answers any.
	AllowedHosts []string
	// IDE serves the GraphQL IDE at /.
	IDE bool
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int64
	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// after SIGINT or SIGTERM.
	ShutdownTimeout time.Duration
	// Limits bounds what one request may make the server do.
	Limits api.Limits
	// HTTP holds the timeouts of the HTTP server.
	HTTP HTTPTimeouts
	// MetricsEnabled serves /metrics; MetricsToken, when set, is the bearer
	// token it asks for.
	MetricsEnabled bool
	MetricsToken   string
	// LogLevel is the least severe level logged (LOG_LEVEL); at warn and
	// above the access log, one info line per request, is off.
	LogLevel slog.Level
	// PprofAddr, when set (PPROF_ADDR), serves net/http/pprof on this
	// address, apart from the API. Off by default: profiles reveal the
	// server's internals.
	PprofAddr string
	// GCPercent is the Go collector's target (GOGC, read here so that a
	// .env file can set it too; "off" is -1): DefaultGCPercent unless set.
	GCPercent int
}

// DefaultGCPercent is the collector's target unless GOGC is set: the heap
// may grow to three times what is live before a collection. A request
// allocates far more than it keeps, so at Go's default of 100 the
// collector took about a quarter of the CPU of a page of tasks; at 200 the
// server answered a fifth more pages per second for about 5 MB more
// resident memory under load (bench/README.md).
const DefaultGCPercent = 200

// HTTPTimeouts are the HTTP server's timeouts (see net/http.Server).
type HTTPTimeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// minMetricsTokenLength keeps METRICS_TOKEN from being guessable.
const minMetricsTokenLength = 16

// Error is a configuration problem with one variable.
type Error struct {
	Var string
	Msg string
}

func (e *Error) Error() string { return e.Var + ": " + e.Msg }

// Load reads the configuration through getenv (os.Getenv in the server).
// In development it may create DevSecretFile in the working directory.
func Load(getenv func(string) string) (*Config, error) {
	c := &Config{Env: getenv("APP_ENV")}
	switch c.Env {
	case "":
		c.Env = Development
	case Development, Production:
	default:
		return nil, &Error{"APP_ENV", fmt.Sprintf("must be %q or %q, got %q", Development, Production, c.Env)}
	}
	prod := c.Env == Production

	if err := c.loadListenAddr(getenv, prod); err != nil {
		return nil, err
	}
	if err := c.loadDatabase(getenv, prod); err != nil {
		return nil, err
	}
	if err := c.loadAuth(getenv, prod); err != nil {
		return nil, err
	}

	c.CORSAllowedOrigins = nil
	origins := getenv("CORS_ALLOWED_ORIGINS")
	if origins == "" && !prod {
		origins = "http://localhost:3000"
	}
	for _, o := range strings.Split(origins, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if err := checkOrigin(o); err != nil {
			return nil, &Error{"CORS_ALLOWED_ORIGINS", err.Error()}
		}
		// A browser's Origin header never ends in "/", and the CORS
		// middleware compares whole strings: "https://app.example.com/"
		// would silently match nothing.
		c.CORSAllowedOrigins = append(c.CORSAllowedOrigins, strings.TrimSuffix(o, "/"))
	}

	if err := c.loadAllowedHosts(getenv, prod); err != nil {
		return nil, err
	}

	var err error
	if c.IDE, err = boolVar(getenv, "GRAPHQL_IDE", !prod); err != nil {
		return nil, err
	}
	maxBody, err := intVar(getenv, "MAX_BODY_BYTES", 1<<20)
	if err != nil {
		return nil, err
	}
	c.MaxBodyBytes = int64(maxBody)
	if c.ShutdownTimeout, err = durationVar(getenv, "SHUTDOWN_TIMEOUT", 30*time.Second); err != nil {
		return nil, err
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return nil, &Error{"LOG_LEVEL", fmt.Sprintf("must be debug, info, warn or error, got %q", v)}
		}
	}
	c.PprofAddr = getenv("PPROF_ADDR")
	c.GCPercent = DefaultGCPercent
	switch v := getenv("GOGC"); v {
	case "":
	case "off":
		c.GCPercent = -1
	default:
		if c.GCPercent, err = strconv.Atoi(v); err != nil || c.GCPercent < 0 {
			return nil, &Error{"GOGC", fmt.Sprintf("must be a percentage (0 or more) or off, got %q", v)}
		}
	}
	if err := c.loadLimits(getenv, prod); err != nil {
		return nil, err
	}
	return c, nil
}

// loadLimits reads what bounds a request: its size and cost, the HTTP
// timeouts, each user's cost budget, and what it may see (introspection,
// suggestions, metrics).
func (c *Config) loadLimits(getenv func(string) string, prod bool) error {
	var err error
	l := &c.Limits
	for _, v := range []struct {
		name string
		dst  *int
		def  int
	}{
		{"GRAPHQL_MAX_COST", &l.MaxCost, api.DefaultMaxCost},
		{"GRAPHQL_MAX_DEPTH", &l.MaxDepth, api.DefaultMaxDepth},
		{"GRAPHQL_MAX_TOKENS", &l.MaxTokens, api.DefaultMaxTokens},
		{"GRAPHQL_MAX_SELECTIONS", &l.MaxSelections, api.DefaultMaxSelections},
		{"GRAPHQL_MAX_SET_SELECTIONS", &l.MaxSetSelections, api.DefaultMaxSetSelections},
		{"GRAPHQL_MAX_RESPONSE_BYTES", &l.MaxResponseBytes, api.DefaultMaxResponseBytes},
		{"COST_BUDGET", &l.CostBudget, api.DefaultCostBudget},
	} {
		if *v.dst, err = intVar(getenv, v.name, v.def); err != nil {
			return err
		}
	}
	if l.ExecutionTimeout, err = durationVar(getenv, "GRAPHQL_EXECUTION_TIMEOUT", api.DefaultExecutionTimeout); err != nil {
		return err
	}
	introspection, err := boolVar(getenv, "GRAPHQL_INTROSPECTION", true)
	if err != nil {
		return err
	}
	l.DisableIntrospection = !introspection
	// Suggestions help whoever writes a query, and with introspection off
	// they would still spell the schema out to anyone who asks: production
	// leaves them off unless asked.
	suggestions, err := boolVar(getenv, "GRAPHQL_SUGGESTIONS", !prod)
	if err != nil {
		return err
	}
	l.DisableSuggestions = !suggestions
	if l.CostRefill, err = floatVar(getenv, "COST_REFILL_PER_SECOND", api.DefaultCostRefill); err != nil {
		return err
	}
	if l.MaxCost > l.CostBudget {
		return &Error{"COST_BUDGET", fmt.Sprintf("must be at least GRAPHQL_MAX_COST (%d), got %d", l.MaxCost, l.CostBudget)}
	}

	for _, t := range []struct {
		name string
		dst  *time.Duration
		def  time.Duration
	}{
		{"HTTP_READ_HEADER_TIMEOUT", &c.HTTP.ReadHeader, 10 * time.Second},
		{"HTTP_READ_TIMEOUT", &c.HTTP.Read, 30 * time.Second},
		{"HTTP_WRITE_TIMEOUT", &c.HTTP.Write, 60 * time.Second},
		{"HTTP_IDLE_TIMEOUT", &c.HTTP.Idle, 120 * time.Second},
	} {
		if *t.dst, err = durationVar(getenv, t.name, t.def); err != nil {
			return err
		}
	}
	// The connection is cut at the write timeout: an operation must end,
	// and its TIMEOUT answer be written, before that.
	if l.ExecutionTimeout >= c.HTTP.Write {
		return &Error{"GRAPHQL_EXECUTION_TIMEOUT", fmt.Sprintf("must be shorter than HTTP_WRITE_TIMEOUT (%s), got %s", c.HTTP.Write, l.ExecutionTimeout)}
	}

	if c.MetricsEnabled, err = boolVar(getenv, "METRICS_ENABLED", !prod); err != nil {
		return err
	}
	c.MetricsToken = getenv("METRICS_TOKEN")
	if c.MetricsToken != "" && len(c.MetricsToken) < minMetricsTokenLength {
		return &Error{"METRICS_TOKEN", fmt.Sprintf("must be at least %d characters", minMetricsTokenLength)}
	}
	return nil
}

func (c *Config) loadListenAddr(getenv func(string) string, prod bool) error {
	host := "127.0.0.1"
	if prod {
		host = ""
	}
	c.ListenAddr = host + ":8080"
	if port := getenv("PORT"); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			return &Error{"PORT", fmt.Sprintf("must be a port number, got %q", port)}
		}
		// Written back canonically: Atoi accepts "+80" and "0080", which
		// the listener would take for a service name or refuse.
		c.ListenAddr = host + ":" + strconv.Itoa(n)
	}
	if addr := getenv("LISTEN_ADDR"); addr != "" {
		c.ListenAddr = addr
	}
	return nil
}

func (c *Config) loadDatabase(getenv func(string) string, prod bool) error {
	c.Database.URL = getenv("DATABASE_URL")
	if c.Database.URL == "" {
		if prod {
			return &Error{"DATABASE_URL", "must be set in production"}
		}
		c.Database.URL = "sqlite://todo.db"
	}
	if !database.IsPostgres(c.Database.URL) && !strings.HasPrefix(c.Database.URL, "sqlite:") {
		return &Error{"DATABASE_URL", "must start with postgres://, postgresql:// or sqlite:"}
	}
	if database.IsPostgres(c.Database.URL) {
		if _, err := url.Parse(c.Database.URL); err != nil {
			return &Error{"DATABASE_URL", "is not a valid URL"}
		}
	}
	c.DirectURL = getenv("DATABASE_DIRECT_URL")
	if c.DirectURL == "" {
		c.DirectURL = DirectURL(c.Database.URL)
	} else if err := checkDirectURL(c.DirectURL); err != nil {
		return err
	}

	var err error
	maxOpen := database.DefaultMaxOpenConns
	if !database.IsPostgres(c.Database.URL) {
		maxOpen = database.DefaultSQLiteMaxOpenConns()
	}
	if c.Database.MaxOpenConns, err = intVar(getenv, "DB_MAX_OPEN_CONNS", maxOpen); err != nil {
		return err
	}
	// The idle default follows a smaller DB_MAX_OPEN_CONNS, so that setting
	// that one alone is not refused for a variable the operator never set.
	if c.Database.MaxIdleConns, err = intVar(getenv, "DB_MAX_IDLE_CONNS", min(database.DefaultMaxIdleConns, c.Database.MaxOpenConns)); err != nil {
		return err
	}
	if c.Database.MaxIdleConns > c.Database.MaxOpenConns {
		return &Error{"DB_MAX_IDLE_CONNS", "must not exceed DB_MAX_OPEN_CONNS"}
	}
	if c.Database.ConnMaxIdleTime, err = durationVar(getenv, "DB_CONN_MAX_IDLE_TIME", database.DefaultConnMaxIdleTime); err != nil {
		return err
	}
	c.Database.ConnMaxLifetime, err = durationVar(getenv, "DB_CONN_MAX_LIFETIME", database.DefaultConnMaxLifetime)
	return err
}

// developmentHosts is ALLOWED_HOSTS unless set in development: loopback
// names only, with any port, so that a page whose name was made to
// resolve to 127.0.0.1 (DNS rebinding) gets nothing from a development
// server, whose IDE carries a token. Production answers any host by
// default: it sits behind a load balancer that chose it by name.
const developmentHosts = "localhost,127.0.0.1,[::1]"

func (c *Config) loadAllowedHosts(getenv func(string) string, prod bool) error {
	hosts, set := getenv("ALLOWED_HOSTS"), true
	if strings.TrimSpace(hosts) == "" {
		hosts, set = "", false
		if !prod {
			hosts = developmentHosts
		}
	}
	c.AllowedHosts = nil
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if err := api.CheckAllowedHost(h); err != nil {
			return &Error{"ALLOWED_HOSTS", err.Error()}
		}
		c.AllowedHosts = append(c.AllowedHosts, h)
	}
	// An empty list answers any host: written as "," it would be a
	// mistake that silently allowed everything.
	if set && len(c.AllowedHosts) == 0 {
		return &Error{"ALLOWED_HOSTS", "names no host: list host names, or write * for any"}
	}
	return nil
}

// DirectURL derives the non-pooled URL of a database: Neon's pooled host
// has "-pooler" in its first label, and the direct host is the same name
// without it.
func DirectURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || !strings.HasSuffix(u.Hostname(), ".neon.tech") {
		return rawURL
	}
	first, rest, _ := strings.Cut(u.Host, ".")
	if direct, ok := strings.CutSuffix(first, "-pooler"); ok {
		u.Host = direct + "." + rest
	}
	return u.String()
}

// checkDirectURL refuses a DATABASE_DIRECT_URL that cannot be direct: not
// PostgreSQL, or Neon's pooled host, which is a transaction-mode pooler
// where LISTEN cannot work. Whether any other host pools is only known by
// connecting: the server checks at boot (database.CheckDirect).
func checkDirectURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || !database.IsPostgres(rawURL) {
		return &Error{"DATABASE_DIRECT_URL", "must be a postgres:// or postgresql:// URL"}
	}
	if direct := DirectURL(rawURL); direct != rawURL {
		d, _ := url.Parse(direct)
		return &Error{"DATABASE_DIRECT_URL", fmt.Sprintf("names Neon's pooled host %s, a transaction-mode pooler where LISTEN/NOTIFY cannot work: "+
			"use the direct host %s, or leave it unset to derive it from DATABASE_URL", u.Hostname(), d.Hostname())}
	}
	return nil
}

func (c *Config) loadAuth(getenv func(string) string, prod bool) error {
	if base := strings.TrimRight(getenv("BETTER_AUTH_URL"), "/"); base != "" {
		if err := checkOrigin(base); err != nil {
			return &Error{"BETTER_AUTH_URL", err.Error()}
		}
		c.Auth.JWKSURL = base + "/api/auth/jwks"
		c.Auth.Issuer = base
		c.Auth.Audience = base
	}
	if v := getenv("AUTH_JWKS_URL"); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return &Error{"AUTH_JWKS_URL", "must be an http(s) URL"}
		}
		c.Auth.JWKSURL = v
	}
	if v := getenv("AUTH_ISSUER"); v != "" {
		c.Auth.Issuer = v
	}
	if v := getenv("AUTH_AUDIENCE"); v != "" {
		c.Auth.Audience = v
	}
	if v := getenv("AUTH_JWT_SECRET"); v != "" {
		if len(v) < 32 {
			return &Error{"AUTH_JWT_SECRET", "must be at least 32 bytes"}
		}
		c.Auth.Secret = []byte(v)
	}
	if c.Auth.JWKSURL != "" || len(c.Auth.Secret) > 0 {
		return nil
	}
	if prod {
		return &Error{"BETTER_AUTH_URL", "production needs a way to verify tokens: set BETTER_AUTH_URL, AUTH_JWKS_URL or AUTH_JWT_SECRET"}
	}
	secret, err := loadOrCreateDevSecret(DevSecretFile)
	if err != nil {
		return &Error{"AUTH_JWT_SECRET", "not set, and no development secret could be kept in " + DevSecretFile + ": " + err.Error()}
	}
	c.Auth.Secret = secret
	c.DevSecret = true
	return nil
}

// loadOrCreateDevSecret reads the development secret at path, creating it
// with 32 random bytes the first time.
func loadOrCreateDevSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(b)); len(s) >= 32 {
			return []byte(s), nil
		}
		return nil, errors.New("file holds fewer than 32 bytes")
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	secret := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []byte(secret), nil
}

func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("%q is not an origin like https://app.example.com", o)
	}
	return nil
}

func intVar(getenv func(string) string, name string, def int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, &Error{name, fmt.Sprintf("must be a positive integer, got %q", v)}
	}
	return n, nil
}

func floatVar(getenv func(string) string, name string, def float64) (float64, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0) || math.IsInf(f, 0) {
		return 0, &Error{name, fmt.Sprintf("must be a positive number, got %q", v)}
	}
	return f, nil
}

// durationVar accepts a Go duration ("90s", "5m") or whole seconds ("300").
func durationVar(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, &Error{name, fmt.Sprintf("must be a duration like 300s or a number of seconds, got %q", v)}
	}
	return d, nil
}

func boolVar(getenv func(string) string, name string, def bool) (bool, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &Error{name, fmt.Sprintf("must be true or false, got %q", v)}
	}
	return b, nil
}
