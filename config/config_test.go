package config_test

import (
	"errors"
	"log/slog"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/taskql/server/config"
	"github.com/taskql/server/database"
)

// env is a fake environment for Load.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// prod is a minimal valid production environment plus extra.
func prod(extra map[string]string) map[string]string {
	vars := map[string]string{
		"APP_ENV":         "production",
		"DATABASE_URL":    "postgres://u:p@db.example.com/app?sslmode=require",
		"BETTER_AUTH_URL": "https://auth.example.com",
	}
	for k, v := range extra {
		if v == "" {
			delete(vars, k)
		} else {
			vars[k] = v
		}
	}
	return vars
}

// inTempDir runs the test in a fresh working directory, where a
// development Load may create config.DevSecretFile. (Not parallel.)
func inTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

// wantConfigError fails unless err is a *config.Error for variable, whose
// message is one line starting with the variable's name.
func wantConfigError(t *testing.T, err error, variable string) {
	t.Helper()
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want *config.Error for %s", err, err, variable)
	}
	if ce.Var != variable {
		t.Fatalf("error names %s, want %s (%v)", ce.Var, variable, err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, variable+": ") || strings.ContainsAny(msg, "\r\n") || len(msg) <= len(variable)+2 {
		t.Fatalf("error %q is not one line starting with %q", msg, variable+": ")
	}
}

func TestLoadDefaultsInDevelopment(t *testing.T) {
	dir := inTempDir(t)
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := database.Config{
		URL:             "sqlite://todo.db",
		MaxOpenConns:    database.DefaultSQLiteMaxOpenConns(),
		MaxIdleConns:    min(database.DefaultMaxIdleConns, database.DefaultSQLiteMaxOpenConns()),
		ConnMaxIdleTime: database.DefaultConnMaxIdleTime,
		ConnMaxLifetime: database.DefaultConnMaxLifetime,
	}
	if c.Env != config.Development || c.ListenAddr != "127.0.0.1:8080" || c.Database != want || c.DirectURL != want.URL {
		t.Fatalf("Load() = env %q, listen %q, database %+v, direct %q", c.Env, c.ListenAddr, c.Database, c.DirectURL)
	}
	if want.MaxOpenConns != runtime.NumCPU()+2 || want.ConnMaxLifetime != 300*time.Second {
		t.Fatalf("SQLite pool defaults %+v, want cores+2 open, 300s", want)
	}
	if !reflect.DeepEqual(c.CORSAllowedOrigins, []string{"http://localhost:3000"}) {
		t.Fatalf("CORS origins %q, want http://localhost:3000", c.CORSAllowedOrigins)
	}
	// Loopback names only, with any port: a development server is not
	// reachable by DNS rebinding (api's host tests use the same list).
	if want := []string{"localhost", "127.0.0.1", "[::1]"}; !reflect.DeepEqual(c.AllowedHosts, want) {
		t.Fatalf("ALLOWED_HOSTS %q, want %q", c.AllowedHosts, want)
	}
	if !c.IDE || c.MaxBodyBytes != 1<<20 || c.ShutdownTimeout != 30*time.Second {
		t.Fatalf("IDE %v, MaxBodyBytes %d, ShutdownTimeout %v", c.IDE, c.MaxBodyBytes, c.ShutdownTimeout)
	}
	// With no way to verify tokens, development makes a secret and keeps it.
	if !c.DevSecret || len(c.Auth.Secret) < 32 || c.Auth.JWKSURL != "" {
		t.Fatalf("auth %+v, DevSecret %v; want a development secret", c.Auth, c.DevSecret)
	}
	info, err := os.Stat(dir + "/" + config.DevSecretFile)
	if err != nil {
		t.Fatalf("the development secret was not kept: %v", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Fatalf("%s has mode %v, want it private", config.DevSecretFile, perm)
	}
	again, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Auth.Secret) != string(c.Auth.Secret) {
		t.Fatal("a second Load made a new development secret: tokens would not survive a restart")
	}
}

func TestLoadDevelopmentRefusesABadDevelopmentSecretFile(t *testing.T) {
	for name, setup := range map[string]func() error{
		"too short":   func() error { return os.WriteFile(config.DevSecretFile, []byte("short\n"), 0o600) },
		"a directory": func() error { return os.Mkdir(config.DevSecretFile, 0o700) },
	} {
		t.Run(name, func(t *testing.T) {
			inTempDir(t)
			if err := setup(); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(env(nil))
			wantConfigError(t, err, "AUTH_JWT_SECRET")
		})
	}
}

func TestLoadDevelopmentWithConfiguredAuthCreatesNoSecretFile(t *testing.T) {
	dir := inTempDir(t)
	c, err := config.Load(env(map[string]string{"AUTH_JWT_SECRET": strings.Repeat("s", 32)}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DevSecret || string(c.Auth.Secret) != strings.Repeat("s", 32) {
		t.Fatalf("auth %+v, DevSecret %v", c.Auth, c.DevSecret)
	}
	if _, err := os.Stat(dir + "/" + config.DevSecretFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s was created although a secret is configured: %v", config.DevSecretFile, err)
	}
}

func TestLoadAcceptsValidSettings(t *testing.T) {
	tests := []struct {
		name  string
		vars  map[string]string
		check func(t *testing.T, c *config.Config)
	}{
		{"production defaults", prod(nil), func(t *testing.T, c *config.Config) {
			if c.Env != config.Production || c.ListenAddr != ":8080" || c.IDE || c.DevSecret || len(c.CORSAllowedOrigins) != 0 {
				t.Fatalf("env %q, listen %q, IDE %v, DevSecret %v, CORS %q", c.Env, c.ListenAddr, c.IDE, c.DevSecret, c.CORSAllowedOrigins)
			}
			if len(c.AllowedHosts) != 0 {
				t.Fatalf("ALLOWED_HOSTS %q, want none (any host) in production", c.AllowedHosts)
			}
		}},
		{"ALLOWED_HOSTS are trimmed and split", prod(map[string]string{"ALLOWED_HOSTS": " api.example.com , .example.org,,[::1]:8080"}),
			func(t *testing.T, c *config.Config) {
				if want := []string{"api.example.com", ".example.org", "[::1]:8080"}; !reflect.DeepEqual(c.AllowedHosts, want) {
					t.Fatalf("ALLOWED_HOSTS %q, want %q", c.AllowedHosts, want)
				}
			}},
		{"ALLOWED_HOSTS replaces development's loopback names", map[string]string{"ALLOWED_HOSTS": "*"},
			func(t *testing.T, c *config.Config) {
				if !reflect.DeepEqual(c.AllowedHosts, []string{"*"}) {
					t.Fatalf("ALLOWED_HOSTS %q", c.AllowedHosts)
				}
			}},
		{"BETTER_AUTH_URL implies JWKS, issuer and audience", prod(map[string]string{"BETTER_AUTH_URL": "https://auth.example.com/"}),
			func(t *testing.T, c *config.Config) {
				if c.Auth.JWKSURL != "https://auth.example.com/api/auth/jwks" || c.Auth.Issuer != "https://auth.example.com" ||
					c.Auth.Audience != "https://auth.example.com" || len(c.Auth.Secret) != 0 {
					t.Fatalf("auth %+v", c.Auth)
				}
			}},
		{"explicit JWKS settings win", prod(map[string]string{
			"AUTH_JWKS_URL": "http://127.0.0.1:3000/jwks", "AUTH_ISSUER": "iss", "AUTH_AUDIENCE": "aud",
		}), func(t *testing.T, c *config.Config) {
			if c.Auth.JWKSURL != "http://127.0.0.1:3000/jwks" || c.Auth.Issuer != "iss" || c.Auth.Audience != "aud" {
				t.Fatalf("auth %+v", c.Auth)
			}
		}},
		{"production with only an HS256 secret", prod(map[string]string{"BETTER_AUTH_URL": "", "AUTH_JWT_SECRET": strings.Repeat("k", 32)}),
			func(t *testing.T, c *config.Config) {
				if string(c.Auth.Secret) != strings.Repeat("k", 32) || c.Auth.JWKSURL != "" || c.DevSecret {
					t.Fatalf("auth %+v", c.Auth)
				}
			}},
		{"production with only AUTH_JWKS_URL", prod(map[string]string{"BETTER_AUTH_URL": "", "AUTH_JWKS_URL": "https://a.example.com/jwks"}),
			func(t *testing.T, c *config.Config) {
				if c.Auth.JWKSURL != "https://a.example.com/jwks" {
					t.Fatalf("auth %+v", c.Auth)
				}
			}},
		{"PORT in development", map[string]string{"PORT": "9090", "AUTH_JWT_SECRET": strings.Repeat("k", 32)},
			func(t *testing.T, c *config.Config) {
				if c.ListenAddr != "127.0.0.1:9090" {
					t.Fatalf("listen %q", c.ListenAddr)
				}
			}},
		{"PORT in production", prod(map[string]string{"PORT": "10000"}), func(t *testing.T, c *config.Config) {
			if c.ListenAddr != ":10000" {
				t.Fatalf("listen %q", c.ListenAddr)
			}
		}},
		{"PORT is written canonically", prod(map[string]string{"PORT": "+0080"}), func(t *testing.T, c *config.Config) {
			if c.ListenAddr != ":80" {
				t.Fatalf("listen %q, want :80", c.ListenAddr)
			}
		}},
		{"LISTEN_ADDR wins over PORT", prod(map[string]string{"PORT": "1", "LISTEN_ADDR": "0.0.0.0:7000"}),
			func(t *testing.T, c *config.Config) {
				if c.ListenAddr != "0.0.0.0:7000" {
					t.Fatalf("listen %q", c.ListenAddr)
				}
			}},
		{"PostgreSQL pool defaults are CONTRACT §2's", prod(nil),
			func(t *testing.T, c *config.Config) {
				d := c.Database
				if d.MaxOpenConns != 15 || d.MaxIdleConns != 15 || d.ConnMaxIdleTime != 300*time.Second || d.ConnMaxLifetime != 300*time.Second {
					t.Fatalf("database %+v, want 15 open, 15 idle, idle time 300s, lifetime 300s", d)
				}
			}},
		{"pool settings", prod(map[string]string{"DB_MAX_OPEN_CONNS": "20", "DB_MAX_IDLE_CONNS": "10", "DB_CONN_MAX_IDLE_TIME": "60", "DB_CONN_MAX_LIFETIME": "900"}),
			func(t *testing.T, c *config.Config) {
				d := c.Database
				if d.MaxOpenConns != 20 || d.MaxIdleConns != 10 || d.ConnMaxIdleTime != time.Minute || d.ConnMaxLifetime != 15*time.Minute {
					t.Fatalf("database %+v, want 20 open, 10 idle, idle time 1m, lifetime 15m", d)
				}
			}},
		{"DB_CONN_MAX_IDLE_TIME and DB_CONN_MAX_LIFETIME are set apart", prod(map[string]string{"DB_CONN_MAX_IDLE_TIME": "30s"}),
			func(t *testing.T, c *config.Config) {
				if c.Database.ConnMaxIdleTime != 30*time.Second || c.Database.ConnMaxLifetime != 300*time.Second {
					t.Fatalf("idle time %v, lifetime %v; want 30s and the default 300s", c.Database.ConnMaxIdleTime, c.Database.ConnMaxLifetime)
				}
			}},
		{"DB_CONN_MAX_LIFETIME as a Go duration", prod(map[string]string{"DB_CONN_MAX_LIFETIME": "5m"}),
			func(t *testing.T, c *config.Config) {
				if c.Database.ConnMaxLifetime != 5*time.Minute {
					t.Fatalf("lifetime %v", c.Database.ConnMaxLifetime)
				}
			}},
		{"a small DB_MAX_OPEN_CONNS alone lowers the idle default", prod(map[string]string{"DB_MAX_OPEN_CONNS": "2"}),
			func(t *testing.T, c *config.Config) {
				if c.Database.MaxOpenConns != 2 || c.Database.MaxIdleConns != 2 {
					t.Fatalf("database %+v, want 2 open and 2 idle", c.Database)
				}
			}},
		{"CORS origins are trimmed, split and normalized", prod(map[string]string{
			"CORS_ALLOWED_ORIGINS": " https://app.example.com/ ,http://localhost:5173,, https://x.example.com:8443",
		}), func(t *testing.T, c *config.Config) {
			want := []string{"https://app.example.com", "http://localhost:5173", "https://x.example.com:8443"}
			if !reflect.DeepEqual(c.CORSAllowedOrigins, want) {
				t.Fatalf("CORS %q, want %q", c.CORSAllowedOrigins, want)
			}
		}},
		{"CORS wildcard", prod(map[string]string{"CORS_ALLOWED_ORIGINS": "*"}), func(t *testing.T, c *config.Config) {
			if !reflect.DeepEqual(c.CORSAllowedOrigins, []string{"*"}) {
				t.Fatalf("CORS %q", c.CORSAllowedOrigins)
			}
		}},
		{"Neon pooled URL derives the direct URL", prod(map[string]string{
			"DATABASE_URL": "postgresql://u:p@ep-a-1-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require",
		}), func(t *testing.T, c *config.Config) {
			if c.DirectURL != "postgresql://u:p@ep-a-1.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require" {
				t.Fatalf("direct URL %q", c.DirectURL)
			}
			if c.Database.URL != "postgresql://u:p@ep-a-1-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require" {
				t.Fatalf("database URL changed: %q", c.Database.URL)
			}
		}},
		{"explicit DATABASE_DIRECT_URL wins", prod(map[string]string{
			"DATABASE_URL":        "postgres://u:p@ep-a-pooler.us-east-2.aws.neon.tech/db",
			"DATABASE_DIRECT_URL": "postgres://u:p@direct.example.com/db",
		}), func(t *testing.T, c *config.Config) {
			if c.DirectURL != "postgres://u:p@direct.example.com/db" {
				t.Fatalf("direct URL %q", c.DirectURL)
			}
		}},
		{"SQLite in production", prod(map[string]string{"DATABASE_URL": "sqlite:///var/lib/app/todo.db"}),
			func(t *testing.T, c *config.Config) {
				if c.Database.URL != "sqlite:///var/lib/app/todo.db" || c.DirectURL != c.Database.URL {
					t.Fatalf("database %q, direct %q", c.Database.URL, c.DirectURL)
				}
			}},
		{"other settings", prod(map[string]string{"GRAPHQL_IDE": "true", "MAX_BODY_BYTES": "4096", "SHUTDOWN_TIMEOUT": "5"}),
			func(t *testing.T, c *config.Config) {
				if !c.IDE || c.MaxBodyBytes != 4096 || c.ShutdownTimeout != 5*time.Second {
					t.Fatalf("IDE %v, MaxBodyBytes %d, ShutdownTimeout %v", c.IDE, c.MaxBodyBytes, c.ShutdownTimeout)
				}
			}},
		{"log level and pprof", prod(map[string]string{"LOG_LEVEL": "WARN", "PPROF_ADDR": "127.0.0.1:6060"}),
			func(t *testing.T, c *config.Config) {
				if c.LogLevel != slog.LevelWarn || c.PprofAddr != "127.0.0.1:6060" {
					t.Fatalf("LogLevel %v, PprofAddr %q", c.LogLevel, c.PprofAddr)
				}
			}},
		{"the collector's target defaults to the server's", prod(nil),
			func(t *testing.T, c *config.Config) {
				if c.GCPercent != config.DefaultGCPercent || config.DefaultGCPercent != 200 {
					t.Fatalf("GCPercent %d, want 200", c.GCPercent)
				}
			}},
		{"GOGC sets the collector's target", prod(map[string]string{"GOGC": "50"}),
			func(t *testing.T, c *config.Config) {
				if c.GCPercent != 50 {
					t.Fatalf("GCPercent %d, want 50", c.GCPercent)
				}
			}},
		{"GOGC=off turns the collector off", prod(map[string]string{"GOGC": "off"}),
			func(t *testing.T, c *config.Config) {
				if c.GCPercent != -1 {
					t.Fatalf("GCPercent %d, want -1", c.GCPercent)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inTempDir(t)
			c, err := config.Load(env(tt.vars))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadRefusesBadSettingsNamingTheVariable(t *testing.T) {
	tests := []struct {
		name, variable string
		vars           map[string]string
	}{
		{"bad APP_ENV", "APP_ENV", prod(map[string]string{"APP_ENV": "prod"})},
		{"APP_ENV is case-sensitive", "APP_ENV", prod(map[string]string{"APP_ENV": "Production"})},
		{"production without DATABASE_URL", "DATABASE_URL", prod(map[string]string{"DATABASE_URL": ""})},
		{"unsupported DATABASE_URL", "DATABASE_URL", prod(map[string]string{"DATABASE_URL": "mysql://u@h/db"})},
		{"unparsable PostgreSQL URL", "DATABASE_URL", prod(map[string]string{"DATABASE_URL": "postgres://u@h:port/%zz"})},
		{"DATABASE_DIRECT_URL on Neon's pooled host", "DATABASE_DIRECT_URL", prod(map[string]string{
			"DATABASE_URL":        "postgresql://u:p@ep-a-1-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require",
			"DATABASE_DIRECT_URL": "postgresql://u:p@ep-a-1-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require",
		})},
		{"DATABASE_DIRECT_URL not PostgreSQL", "DATABASE_DIRECT_URL", prod(map[string]string{"DATABASE_DIRECT_URL": "sqlite://todo.db"})},
		{"DATABASE_DIRECT_URL unparsable", "DATABASE_DIRECT_URL", prod(map[string]string{"DATABASE_DIRECT_URL": "postgres://u:p@h:port/%zz"})},
		{"production without a way to verify tokens", "BETTER_AUTH_URL", prod(map[string]string{"BETTER_AUTH_URL": ""})},
		{"BETTER_AUTH_URL that is not an origin", "BETTER_AUTH_URL", prod(map[string]string{"BETTER_AUTH_URL": "auth.example.com"})},
		{"AUTH_JWKS_URL that is not http(s)", "AUTH_JWKS_URL", prod(map[string]string{"AUTH_JWKS_URL": "file:///etc/jwks.json"})},
		{"AUTH_JWKS_URL without a host", "AUTH_JWKS_URL", prod(map[string]string{"AUTH_JWKS_URL": "https:///jwks"})},
		{"AUTH_JWT_SECRET of 31 bytes", "AUTH_JWT_SECRET", prod(map[string]string{"AUTH_JWT_SECRET": strings.Repeat("s", 31)})},
		{"short AUTH_JWT_SECRET in development", "AUTH_JWT_SECRET", map[string]string{"AUTH_JWT_SECRET": "secret"}},
		{"PORT not a number", "PORT", prod(map[string]string{"PORT": "http"})},
		{"PORT negative", "PORT", prod(map[string]string{"PORT": "-1"})},
		{"PORT too large", "PORT", prod(map[string]string{"PORT": "65536"})},
		{"PORT with a host", "PORT", prod(map[string]string{"PORT": "0.0.0.0:80"})},
		{"DB_MAX_OPEN_CONNS zero", "DB_MAX_OPEN_CONNS", prod(map[string]string{"DB_MAX_OPEN_CONNS": "0"})},
		{"DB_MAX_OPEN_CONNS not a number", "DB_MAX_OPEN_CONNS", prod(map[string]string{"DB_MAX_OPEN_CONNS": "many"})},
		{"DB_MAX_IDLE_CONNS negative", "DB_MAX_IDLE_CONNS", prod(map[string]string{"DB_MAX_IDLE_CONNS": "-5"})},
		{"DB_MAX_IDLE_CONNS above DB_MAX_OPEN_CONNS", "DB_MAX_IDLE_CONNS", prod(map[string]string{"DB_MAX_OPEN_CONNS": "4", "DB_MAX_IDLE_CONNS": "5"})},
		{"DB_CONN_MAX_IDLE_TIME not a duration", "DB_CONN_MAX_IDLE_TIME", prod(map[string]string{"DB_CONN_MAX_IDLE_TIME": "a while"})},
		{"DB_CONN_MAX_IDLE_TIME zero", "DB_CONN_MAX_IDLE_TIME", prod(map[string]string{"DB_CONN_MAX_IDLE_TIME": "0"})},
		{"DB_CONN_MAX_LIFETIME not a duration", "DB_CONN_MAX_LIFETIME", prod(map[string]string{"DB_CONN_MAX_LIFETIME": "forever"})},
		{"DB_CONN_MAX_LIFETIME zero", "DB_CONN_MAX_LIFETIME", prod(map[string]string{"DB_CONN_MAX_LIFETIME": "0"})},
		{"DB_CONN_MAX_LIFETIME negative", "DB_CONN_MAX_LIFETIME", prod(map[string]string{"DB_CONN_MAX_LIFETIME": "-5s"})},
		{"DB_CONN_MAX_LIFETIME without a unit", "DB_CONN_MAX_LIFETIME", prod(map[string]string{"DB_CONN_MAX_LIFETIME": "1.5"})},
		{"ALLOWED_HOSTS with a URL", "ALLOWED_HOSTS", prod(map[string]string{"ALLOWED_HOSTS": "api.example.com,https://api.example.com"})},
		{"ALLOWED_HOSTS with a path", "ALLOWED_HOSTS", prod(map[string]string{"ALLOWED_HOSTS": "api.example.com/graphql"})},
		{"ALLOWED_HOSTS that names no host", "ALLOWED_HOSTS", prod(map[string]string{"ALLOWED_HOSTS": " , "})},
		{"CORS origin without a scheme", "CORS_ALLOWED_ORIGINS", prod(map[string]string{"CORS_ALLOWED_ORIGINS": "localhost:3000"})},
		{"CORS origin with a path", "CORS_ALLOWED_ORIGINS", prod(map[string]string{"CORS_ALLOWED_ORIGINS": "https://a.example.com/app"})},
		{"CORS origin with a query", "CORS_ALLOWED_ORIGINS", prod(map[string]string{"CORS_ALLOWED_ORIGINS": "https://a.example.com?x=1"})},
		{"CORS origin of another scheme", "CORS_ALLOWED_ORIGINS", prod(map[string]string{"CORS_ALLOWED_ORIGINS": "https://ok.example.com,ftp://a.example.com"})},
		{"bad GRAPHQL_IDE", "GRAPHQL_IDE", prod(map[string]string{"GRAPHQL_IDE": "sometimes"})},
		{"bad MAX_BODY_BYTES", "MAX_BODY_BYTES", prod(map[string]string{"MAX_BODY_BYTES": "1MB"})},
		{"bad SHUTDOWN_TIMEOUT", "SHUTDOWN_TIMEOUT", prod(map[string]string{"SHUTDOWN_TIMEOUT": "soon"})},
		{"bad LOG_LEVEL", "LOG_LEVEL", prod(map[string]string{"LOG_LEVEL": "verbose"})},
		{"GOGC not a number", "GOGC", prod(map[string]string{"GOGC": "lots"})},
		{"GOGC negative", "GOGC", prod(map[string]string{"GOGC": "-5"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inTempDir(t)
			c, err := config.Load(env(tt.vars))
			wantConfigError(t, err, tt.variable)
			if c != nil {
				t.Fatal("Load returned a configuration with its error")
			}
			if strings.Contains(err.Error(), "u:p@") {
				t.Fatalf("error %q shows the database password", err)
			}
		})
	}
}

func TestProductionWithoutVerifierExplainsTheChoices(t *testing.T) {
	inTempDir(t)
	_, err := config.Load(env(prod(map[string]string{"BETTER_AUTH_URL": ""})))
	for _, v := range []string{"BETTER_AUTH_URL", "AUTH_JWKS_URL", "AUTH_JWT_SECRET"} {
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Fatalf("error %v does not mention %s", err, v)
		}
	}
	if _, statErr := os.Stat(config.DevSecretFile); !errors.Is(statErr, os.ErrNotExist) {
		t.Fatal("production created a development secret")
	}
}

func TestDirectURLDropsPoolerFromNeonHostsOnly(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"postgres://u:p@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require",
			"postgres://u:p@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require"},
		{"postgresql://u:p@ep-x-pooler.eu-central-1.aws.neon.tech:5432/db",
			"postgresql://u:p@ep-x.eu-central-1.aws.neon.tech:5432/db"},
		{"postgres://u:p%40ss@ep-x-pooler.c-2.us-east-2.aws.neon.tech/db",
			"postgres://u:p%40ss@ep-x.c-2.us-east-2.aws.neon.tech/db"},
		// Unchanged: already direct, not Neon, a look-alike, not a URL.
		{"postgres://u:p@ep-x.us-east-2.aws.neon.tech/db", "postgres://u:p@ep-x.us-east-2.aws.neon.tech/db"},
		{"postgres://u:p@db-pooler.example.com/db", "postgres://u:p@db-pooler.example.com/db"},
		{"postgres://u:p@ep-x-pooler.neon.tech.example.com/db", "postgres://u:p@ep-x-pooler.neon.tech.example.com/db"},
		{"postgres://u:p@ep-x.us-east-2-pooler.aws.neon.tech/db", "postgres://u:p@ep-x.us-east-2-pooler.aws.neon.tech/db"},
		{"sqlite://todo.db", "sqlite://todo.db"},
		{"sqlite::memory:", "sqlite::memory:"},
		{"postgres://u@h:port/%zz", "postgres://u@h:port/%zz"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := config.DirectURL(tt.in); got != tt.want {
			t.Errorf("DirectURL(%q)\n = %q\n want %q", tt.in, got, tt.want)
		}
	}
}
