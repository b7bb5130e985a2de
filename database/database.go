// Package database opens the server's database, PostgreSQL or SQLite, from
// the URL an operator configures. Dialect and driver differences are settled
// here, so the rest of the server sees one *bun.DB.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"
)

// Config says which database to open and how to pool its connections.
// Zero pool values take the defaults below.
type Config struct {
	// URL is postgres://…, postgresql://…, sqlite://PATH or sqlite::memory:.
	URL string
	// Tracer, when not nil, sees every statement and new connection on
	// PostgreSQL (the telemetry package's SQL spans).
	Tracer pgx.QueryTracer
	// MaxOpenConns bounds open connections (default 15: serverless
	// PostgreSQL counts connections).
	MaxOpenConns int
	// MaxIdleConns bounds idle connections kept for reuse (default 15).
	MaxIdleConns int
	// ConnMaxIdleTime closes a connection unused for this long (default
	// 300s), so that an idle server holds no connection and lets a
	// serverless database scale to zero.
	ConnMaxIdleTime time.Duration
	// ConnMaxLifetime closes connections older than this (default 300s), so
	// a pool follows a Neon compute that was suspended or replaced.
	ConnMaxLifetime time.Duration
	// Logger receives what the server should know about the database,
	// such as a switch of statement mode behind a pooler; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Pool defaults, sized for serverless PostgreSQL (CONTRACT §2): the plan's
// pool of 5 with 10 overflow, as a cap of 15. Every connection that may be
// open may also stay idle, because database/sql closes a connection
// returned while the idle slots are full, and under steady load of more
// than MaxIdleConns requests PostgreSQL would fork a process for each
// reconnection (bench/README.md); ConnMaxIdleTime, not the idle cap, is
// what gives the connections of a burst back.
const (
	DefaultMaxOpenConns    = 15
	DefaultMaxIdleConns    = 15
	DefaultConnMaxIdleTime = 300 * time.Second
	DefaultConnMaxLifetime = 300 * time.Second
)

// DefaultSQLiteMaxOpenConns is the pool default for an SQLite file: a
// connection per core and two more. SQLite writes one at a time and each
// connection keeps a page cache of its own, so the PostgreSQL default of
// 15 only added memory: 98.7 MB under load against 53.9 MB with 4 (2
// cores), for the same reads and writes per second (bench/README.md).
func DefaultSQLiteMaxOpenConns() int { return runtime.NumCPU() + 2 }

// sqliteBusyTimeout is how long a writer waits for SQLite's single write
// lock before giving up; writers queue instead of failing with
// "database is locked".
const sqliteBusyTimeout = 10 * time.Second

// sqliteBusy is SQLITE_BUSY, the primary result code of a locked database.
const sqliteBusy = 5

// ErrUnsupportedURL reports a database URL whose scheme is none of those
// the server speaks.
var ErrUnsupportedURL = errors.New("unsupported database URL: want postgres://, postgresql://, sqlite://PATH or sqlite::memory:")

// Open opens and pings the database cfg names.
func Open(ctx context.Context, cfg Config) (*bun.DB, error) {
	if cfg.MaxOpenConns <= 0 {
		cfg.MaxOpenConns = DefaultMaxOpenConns
	}
	if cfg.MaxIdleConns <= 0 {
		cfg.MaxIdleConns = DefaultMaxIdleConns
	}
	if cfg.ConnMaxIdleTime <= 0 {
		cfg.ConnMaxIdleTime = DefaultConnMaxIdleTime
	}
	if cfg.ConnMaxLifetime <= 0 {
		cfg.ConnMaxLifetime = DefaultConnMaxLifetime
	}
	var (
		db  *bun.DB
		err error
	)
	switch {
	case IsPostgres(cfg.URL):
		db, err = openPostgres(cfg)
	case strings.HasPrefix(cfg.URL, "sqlite:"):
		db, err = openSQLite(cfg)
	default:
		return nil, ErrUnsupportedURL
	}
	if err != nil {
		return nil, err
	}
	if err := ping(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return db, nil
}

// ping opens db's first connection. On SQLite that switches a new file to
// WAL, for which SQLite does not call its busy handler: a second process
// opening the same file at that moment gets SQLITE_BUSY at once, so it
// tries again, for up to the busy timeout.
func ping(ctx context.Context, db *bun.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	for {
		err := db.PingContext(ctx)
		var coded interface{ Code() int }
		if err == nil || !errors.As(err, &coded) || coded.Code()&0xff != sqliteBusy || time.Now().After(deadline) {
			return err
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

// IsPostgres reports whether rawURL names a PostgreSQL database.
func IsPostgres(rawURL string) bool {
	return strings.HasPrefix(rawURL, "postgres://") || strings.HasPrefix(rawURL, "postgresql://")
}

func openPostgres(cfg Config) (*bun.DB, error) {
	connConfig, err := PostgresConfig(cfg.URL)
	if err != nil {
		return nil, err
	}
	// The model binds its values, so a query's text repeats and pgx's
	// default mode (cache_statement) prepares it once per connection:
	// PostgreSQL then skips parsing and planning it on every call. pgx
	// sends statements without values, such as those Bun writes with the
	// values in the text, with the simple protocol and never caches them.
	// Behind a transaction-mode pooler that does not keep prepared
	// statements the pool switches itself to unprepared statements
	// (pooler.go): the URL works as pasted.
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	connConfig.Tracer = cfg.Tracer
	modes := &statementModes{log: log}
	sqldb := sql.OpenDB(&connector{
		Connector: stdlib.GetConnector(*connConfig,
			stdlib.OptionBeforeConnect(modes.beforeConnect),
			stdlib.OptionAfterConnect(scanTimesInUTC)),
		modes: modes,
	})
	// pgx's driver pings a connection idle for more than a second before
	// handing it out again, so a connection dropped by the server while idle
	// is replaced instead of failing a request.
	setPool(sqldb, cfg)
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

// PlanPerCall, first among the arguments of a PostgreSQL query, makes
// PostgreSQL plan the query for the values of each call, as an unnamed
// statement, instead of reusing a prepared plan made for any values. After
// a few calls PostgreSQL may settle on such a generic plan, and for a
// query whose best plan depends on its values it can be far off: a page of
// tasks, planned for a user of average size, reads all of a user's tasks
// by ix_task_user_id and sorts them, which for a user with 100,000 tasks
// took 27–53 ms per page instead of about 0.1 (bench/README.md).
//
// It is pgx's cache_describe mode rather than exec: both send an unnamed
// statement that PostgreSQL plans for the call's values and that needs
// nothing kept on the server, so any pooler passes it; but cache_describe
// knows the statement's parameter and column types from one Describe per
// connection (kept by pgx, not by PostgreSQL), so values and rows travel
// in binary rather than as text that pgx parses again: a page of 20 tasks
// in model.BenchmarkList, 302 allocations before, 281 after.
const PlanPerCall = pgx.QueryExecModeCacheDescribe

// PostgresConfig parses a PostgreSQL URL into the settings of a pgx
// connection, as the pool's connections are made: for a connection of its
// own, such as one that LISTENs.
func PostgresConfig(rawURL string) (*pgx.ConnConfig, error) {
	// pgx understands a Neon URL as Neon prints it, channel_binding
	// included.
	connConfig, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse PostgreSQL URL: %w", err)
	}
	verifyNeonCertificates(connConfig)
	return connConfig, nil
}

// scanTimesInUTC makes the connection read timestamptz values in UTC, as
// SQLite's are read, instead of in the process's local time zone, which pgx
// uses by default: the server's times are UTC on both databases.
func scanTimesInUTC(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterType(&pgtype.Type{
		Name:  "timestamptz",
		OID:   pgtype.TimestamptzOID,
		Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
	})
	return nil
}

// verifyNeonCertificates makes sslmode=require verify the certificate of a
// Neon host against the system's roots. Like libpq, pgx only encrypts under
// require; Neon's certificates are publicly trusted, so verifying them costs
// nothing and stops a man in the middle. Other hosts keep libpq's meaning.
func verifyNeonCertificates(c *pgx.ConnConfig) {
	for _, tc := range append([]*pgconn.FallbackConfig{{Host: c.Host, TLSConfig: c.TLSConfig}}, c.Fallbacks...) {
		if tc.TLSConfig != nil && tc.TLSConfig.InsecureSkipVerify && strings.HasSuffix(tc.Host, ".neon.tech") {
			tc.TLSConfig.InsecureSkipVerify = false
			tc.TLSConfig.VerifyPeerCertificate = nil
			tc.TLSConfig.ServerName = tc.Host
		}
	}
}

func openSQLite(cfg Config) (*bun.DB, error) {
	dsn, memory, err := sqliteDSN(cfg.URL)
	if err != nil {
		return nil, err
	}
	sqldb, err := sql.Open(sqliteshim.ShimName, dsn)
	if err != nil {
		return nil, fmt.Errorf("open SQLite: %w", err)
	}
	if memory {
		// Each connection to :memory: is a database of its own: keep exactly
		// one, forever.
		sqldb.SetMaxOpenConns(1)
		sqldb.SetMaxIdleConns(1)
		sqldb.SetConnMaxLifetime(0)
	} else {
		setPool(sqldb, cfg)
	}
	return bun.NewDB(sqldb, sqlitedialect.New()), nil
}

// setPool applies the pool settings of cfg, whose zero values Open has
// already defaulted.
func setPool(sqldb *sql.DB, cfg Config) {
	sqldb.SetMaxOpenConns(cfg.MaxOpenConns)
	sqldb.SetMaxIdleConns(cfg.MaxIdleConns)
	sqldb.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
	sqldb.SetConnMaxLifetime(cfg.ConnMaxLifetime)
}

// sqliteDSN turns sqlite://PATH or sqlite::memory: into a driver DSN whose
// pragmas apply to every pooled connection: WAL so readers do not block the
// writer, a busy timeout so writers wait their turn, foreign keys, and
// BEGIN IMMEDIATE so a transaction takes the write lock up front instead of
// failing when it upgrades from reader to writer.
func sqliteDSN(rawURL string) (dsn string, memory bool, err error) {
	params := url.Values{}
	params.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	params.Add("_pragma", "foreign_keys(1)")
	params.Set("_txlock", "immediate")
	if rawURL == "sqlite::memory:" {
		return "file::memory:?" + params.Encode(), true, nil
	}
	path, ok := strings.CutPrefix(rawURL, "sqlite://")
	if !ok || path == "" || strings.ContainsAny(path, "?#") {
		return "", false, ErrUnsupportedURL
	}
	params.Add("_pragma", "journal_mode(WAL)")
	// SQLite decodes %XX escapes in a file: URI; escape '%' so that PATH is
	// the file's name as written.
	path = strings.ReplaceAll(path, "%", "%25")
	return "file:" + path + "?" + params.Encode(), false, nil
}
