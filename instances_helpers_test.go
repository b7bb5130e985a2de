package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The helpers of the tests that run the server as processes, on a
// PostgreSQL cluster of their own.

// buildServer builds the server binary into a temporary directory.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "server")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serverProcess is the server running as a process of its own.
type serverProcess struct {
	cmd  *exec.Cmd
	URL  string
	log  *logWatcher
	done chan error
}

// startServer runs bin with the environment vars (and nothing else of the
// test's environment but PATH and HOME) and waits until it listens. It is
// stopped when the test ends.
func startServer(t *testing.T, bin string, vars map[string]string) *serverProcess {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir() // where a .env would be read from: none
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &serverProcess{cmd: cmd, log: newLogWatcher(), done: make(chan error, 1)}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.URL = <-p.log.url:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("the server exited before listening: %v\n%s", err, p.log)
	case <-time.After(60 * time.Second):
		t.Fatalf("the server did not listen within a minute:\n%s", p.log)
	}
	return p
}

// stop sends SIGTERM and waits for the process to exit, failing the test
// unless it exits cleanly within timeout.
func (p *serverProcess) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("the server exited with %v after SIGTERM:\n%s", err, p.log)
		}
	case <-time.After(timeout):
		t.Fatalf("the server did not exit within %v of SIGTERM:\n%s", timeout, p.log)
	}
}

// pgCluster is a throwaway PostgreSQL cluster: tests that restart a
// database must not restart the one other tests share.
type pgCluster struct {
	bin  string // the directory of initdb, pg_ctl, postgres
	dir  string
	port int
	// asPostgres runs a command as the postgres OS user when the tests
	// run as root, which PostgreSQL refuses to run as.
	asPostgres bool
}

// startCluster initializes and starts a cluster in a temporary directory,
// stopped when the test ends. Without PostgreSQL's server binaries the
// test is skipped, unless TEST_REQUIRE_POSTGRES=1.
func startCluster(t *testing.T) *pgCluster {
	t.Helper()
	c := &pgCluster{bin: postgresBinDir()}
	if c.bin == "" {
		if os.Getenv("TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatal("TEST_REQUIRE_POSTGRES=1 but PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
		}
		t.Skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
	}
	c.asPostgres = os.Geteuid() == 0
	dir, err := os.MkdirTemp("", "taskql-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c.dir = dir
	if c.asPostgres {
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
	c.port = freePort(t)
	c.run(t, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	c.pgCtl(t, "start")
	t.Cleanup(func() { c.pgCtl(t, "stop", "-m", "immediate") })
	return c
}

// URL is the cluster's postgres database.
func (c *pgCluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// restart restarts the cluster, which drops every connection to it.
func (c *pgCluster) restart(t *testing.T) {
	t.Helper()
	c.pgCtl(t, "restart", "-m", "fast")
}

func (c *pgCluster) pgCtl(t *testing.T, args ...string) {
	t.Helper()
	args = append([]string{"-D", filepath.Join(c.dir, "data"), "-w", "-t", "60", "-l", filepath.Join(c.dir, "log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", c.port, c.dir)}, args...)
	c.run(t, "pg_ctl", args...)
}

func (c *pgCluster) run(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	if c.asPostgres {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", filepath.Join(c.bin, name)}, args...)...)
	}
	cmd.Dir = c.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		t.Fatalf("%s %v: %v\n%s\n%s", name, args, err, out, log)
	}
}

// postgresBinDir finds PostgreSQL's server binaries: PG_BINDIR, or
// Debian's /usr/lib/postgresql/<version>/bin, or the PATH.
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

// freePort returns a TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
