package testutil

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The helpers of tests that run the server as a process, or need a
// PostgreSQL they may stop and restart.

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// PostgresCluster is a throwaway PostgreSQL cluster in a temporary
// directory, listening on 127.0.0.1 only. Tests that stop or restart a
// database use one: the PostgreSQL of TEST_DATABASE_URL is shared by every
// other test and must never go away under them.
type PostgresCluster struct {
	bin  string // the directory of initdb, pg_ctl, postgres
	dir  string
	port int
	// asPostgres runs PostgreSQL's programs as the postgres OS user when
	// the tests run as root, which PostgreSQL refuses to run as.
	asPostgres bool
}

// StartPostgresCluster initializes and starts a cluster, stopped and removed
// when the test ends. Without PostgreSQL's server binaries the test is
// skipped, unless TEST_REQUIRE_POSTGRES=1.
func StartPostgresCluster(t testing.TB) *PostgresCluster {
	t.Helper()
	c := &PostgresCluster{bin: postgresBinDir()}
	if c.bin == "" {
		if os.Getenv("TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatal("TEST_REQUIRE_POSTGRES=1 but PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
		}
		t.Skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
	}
	dir, err := os.MkdirTemp("", "taskql-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c.dir = dir
	if c.asPostgres = os.Geteuid() == 0; c.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("the tests run as root, and there is no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	c.port = FreePort(t)
	c.run(t, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	c.Start(t)
	t.Cleanup(func() { c.pgCtl(t, "stop", "-m", "immediate") })
	return c
}

// URL is the URL of the cluster's postgres database.
func (c *PostgresCluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Start starts the stopped cluster.
func (c *PostgresCluster) Start(t testing.TB) {
	t.Helper()
	c.pgCtl(t, "start")
}

// Stop stops the cluster the way an operator or a Neon suspend does: fast
// shutdown, which ends every session.
func (c *PostgresCluster) Stop(t testing.TB) {
	t.Helper()
	c.pgCtl(t, "stop", "-m", "fast")
}

// Restart restarts the cluster, which drops every connection to it.
func (c *PostgresCluster) Restart(t testing.TB) {
	t.Helper()
	c.pgCtl(t, "restart", "-m", "fast")
}

// Open opens a connection pool of the test's own to the cluster, closed
// when the test ends.
func (c *PostgresCluster) Open(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", c.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (c *PostgresCluster) pgCtl(t testing.TB, args ...string) {
	t.Helper()
	args = append([]string{"-D", filepath.Join(c.dir, "data"), "-w", "-t", "60", "-l", filepath.Join(c.dir, "log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=off", c.port, c.dir)}, args...)
	c.run(t, "pg_ctl", args...)
}

func (c *PostgresCluster) run(t testing.TB, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prog := filepath.Join(c.bin, name)
	cmd := exec.CommandContext(ctx, prog, args...)
	if c.asPostgres {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", prog}, args...)...)
	}
	cmd.Dir = c.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		t.Fatalf("%s %v: %v\n%s\n%s", name, args, err, out, log)
	}
}

// postgresBinDir finds PostgreSQL's server binaries: PG_BINDIR, or
// Debian's /usr/lib/postgresql/<version>/bin (the newest), or the PATH.
func postgresBinDir() string {
	if dir := os.Getenv("PG_BINDIR"); dir != "" {
		return dir
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}
