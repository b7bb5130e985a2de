package testutil

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PgBouncer is a private PgBouncer process in transaction mode in front of
// the PostgreSQL of TEST_DATABASE_URL, as an operator would put one there:
// max_prepared_statements unset (PgBouncer before 1.21 has no such
// setting), so a statement prepared by one client stays on the server
// connection that the pooler hands to the next. Tests of what the server
// does behind such a pooler start one.
type PgBouncer struct {
	port int
	// base is TEST_DATABASE_URL, the direct connection the pooler forwards to.
	base *url.URL
}

// pgbouncerPoolSize is the pooler's server connections per database: fewer
// than a server's pool, so that clients share server connections the way
// they do under load, which is when statements collide.
const pgbouncerPoolSize = 4

// StartPgBouncer starts PgBouncer on a free port, stopped when the test
// ends. Every database of the PostgreSQL of TEST_DATABASE_URL is reachable
// through it under its own name, and the user name is ignored (auth_type
// any): PgBouncer 1.18 refuses startup parameters it does not know, such
// as search_path, so tests isolate themselves with a database of their own
// (NewPostgresDatabase). Without the pgbouncer binary the test is skipped,
// unless TEST_REQUIRE_POSTGRES=1.
func StartPgBouncer(t testing.TB) *PgBouncer {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"} {
			if _, statErr := os.Stat(p); statErr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		if os.Getenv("TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatal("TEST_REQUIRE_POSTGRES=1 but pgbouncer is not installed (.ci/run installs Debian's pgbouncer package)")
		}
		t.Skip("pgbouncer is not installed")
	}
	base := testDatabaseURL(t)
	host, port := base.Hostname(), base.Port()
	if port == "" {
		port = "5432"
	}
	user := base.User.Username()
	if user == "" {
		user = "postgres"
	}
	dir := t.TempDir()
	// PgBouncer refuses to run as root; it then runs as the postgres user
	// (-u), which must be able to read its configuration.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &PgBouncer{port: FreePort(t), base: base}
	conf := fmt.Sprintf(`[databases]
* = host=%s port=%s user=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = %d
max_client_conn = 1000
server_lifetime = 3600
server_idle_timeout = 600
`, host, port, user, b.port, pgbouncerPoolSize)
	if pw, ok := base.User.Password(); ok {
		conf = strings.Replace(conf, "user="+user, fmt.Sprintf("user=%s password=%s", user, pw), 1)
	}
	ini := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(ini, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{ini}
	if os.Geteuid() == 0 {
		args = []string{"-u", "postgres", ini}
	}
	cmd := exec.Command(bin, args...)
	var log SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) // SIGINT: safe shutdown, clients are gone
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			return b
		}
		select {
		case <-exited:
			t.Fatalf("pgbouncer exited at start:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgbouncer did not listen on %s within 10s:\n%s", b.Addr(), log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is the pooler's host:port.
func (b *PgBouncer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// URL is the URL of database through the pooler, as an operator would
// paste it: no parameter that tells the server it is pooled.
func (b *PgBouncer) URL(database string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", b.user(), b.Addr(), database)
}

// DirectURL is the URL of database on the PostgreSQL behind the pooler.
func (b *PgBouncer) DirectURL(database string) string {
	u := *b.base
	u.Path = "/" + database
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	return u.String()
}

func (b *PgBouncer) user() string {
	if u := b.base.User.Username(); u != "" {
		return u
	}
	return "postgres"
}

// NewPostgresDatabase creates an empty database of the test's own on the
// PostgreSQL of TEST_DATABASE_URL, dropped when the test ends, and returns
// its name. Unlike URL's schemas it needs no search_path parameter, which
// PgBouncer refuses.
func NewPostgresDatabase(t testing.TB) string {
	t.Helper()
	base := testDatabaseURL(t)
	name := "test_" + randomHex(8)
	admin, err := sql.Open("pgx", base.String())
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database on TEST_DATABASE_URL: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base.String())
		if err != nil {
			return
		}
		defer admin.Close()
		// FORCE: the pooler may still hold server connections to it.
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	return name
}

// testDatabaseURL is TEST_DATABASE_URL parsed; the test is skipped without
// it, or fails when TEST_REQUIRE_POSTGRES=1.
func testDatabaseURL(t testing.TB) *url.URL {
	t.Helper()
	raw := testDatabaseURLString(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	return u
}
