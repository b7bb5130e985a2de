package testutil

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The server binary as a process of its own, for the tests that need the
// real thing (several instances, signals, traces, faults) and for the
// benchmark, which is a program: Start and BuildServer take a context and
// return errors; StartServer and ServerBinary are their wrappers for tests.

// BuildServer builds the server binary of the module the working
// directory is in into dir and returns its path.
func BuildServer(ctx context.Context, dir string) (string, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "taskql-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build the server: %v\n%s", err, out)
	}
	return bin, nil
}

// ModuleRoot is the directory of the go.mod of the module the working
// directory is in: the server's checkout.
func ModuleRoot(ctx context.Context) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the server's module: run from its checkout")
	}
	return filepath.Dir(mod), nil
}

// builtServer is this test process's build of the server: building it
// once, however many tests start it, is the point of ServerBinary. It is
// a memo of one result, never changed once set, the package's only
// package-level variable.
var builtServer = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	// One directory per checkout, reused by later runs rather than left
	// behind by each: the build goes to a directory of its own and is
	// renamed into place, so test processes of one checkout running at
	// once (go test ./...) never see half a binary.
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "taskql-server-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	built, err := BuildServer(ctx, tmp)
	if err != nil {
		return "", err
	}
	// Renaming over a binary another process runs leaves that process
	// its own copy: the old file lives on until it exits.
	bin := filepath.Join(dir, "taskql-server")
	if err := os.Rename(built, bin); err != nil {
		return "", err
	}
	return bin, nil
})

// ServerBinary returns the server binary built from this checkout, built
// once per test process.
func ServerBinary(t testing.TB) string {
	t.Helper()
	bin, err := builtServer()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Options say how to start the server binary.
type Options struct {
	// Bin is the binary to run; required by Start, and the one of
	// ServerBinary when StartServer is given "".
	Bin string
	// Env is the server's environment, on top of PATH and HOME (this
	// process's, unless Env sets them): nothing else of this process's
	// environment reaches it. An empty value leaves the variable out.
	// Without LISTEN_ADDR the server listens on a free loopback port.
	Env map[string]string
	// Dir is the server's working directory; it should hold no .env.
	// Start requires it; StartServer makes a temporary one when "".
	Dir string
	// Log, when set, receives the server's stdout and stderr instead of
	// Process keeping them (the benchmark writes a long log to a file).
	Log io.Writer
	// ReadyPath is what Start polls until it answers 200: "/healthz"
	// (serving) when "", "/readyz" to wait for the database too.
	ReadyPath string
	// Timeout bounds the wait until ready; zero means a minute.
	Timeout time.Duration
}

// Process is the server binary running.
type Process struct {
	// Addr is where the server listens, host:port; URL is http://Addr.
	Addr, URL string

	cmd  *exec.Cmd
	log  *SyncBuffer // nil when Options.Log took the log
	done chan struct{}
	err  error // the exit status, once done is closed
}

// Start runs opts.Bin in opts.Dir with opts.Env and waits until it
// answers opts.ReadyPath. When it exits first, or is not ready in time or
// before ctx ends, it is killed and Start says why.
func Start(ctx context.Context, opts Options) (*Process, error) {
	if opts.Bin == "" || opts.Dir == "" {
		return nil, errors.New("start the server: Options.Bin and Options.Dir are required")
	}
	vars := map[string]string{"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME")}
	for k, v := range opts.Env {
		vars[k] = v
	}
	if vars["LISTEN_ADDR"] == "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		vars["LISTEN_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	p := &Process{Addr: vars["LISTEN_ADDR"], done: make(chan struct{})}
	p.URL = "http://" + p.Addr
	p.cmd = exec.Command(opts.Bin)
	p.cmd.Dir = opts.Dir
	for k, v := range vars {
		if v != "" {
			p.cmd.Env = append(p.cmd.Env, k+"="+v)
		}
	}
	out := opts.Log
	if out == nil {
		p.log = &SyncBuffer{}
		out = p.log
	}
	// One writer for both: exec copies them through one goroutine.
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.Bin, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()

	path, timeout := opts.ReadyPath, opts.Timeout
	if path == "" {
		path = "/healthz"
	}
	if timeout <= 0 {
		timeout = time.Minute
	}
	deadline := time.After(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if ready(client, p.URL+path) {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("the server exited before it was ready (%v)%s", p.err, p.logSuffix())
		case <-ctx.Done():
			p.Kill()
			return nil, ctx.Err()
		case <-deadline:
			p.Kill()
			return nil, fmt.Errorf("the server was not ready within %v%s", timeout, p.logSuffix())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StartServer is Start for a test: the binary of ServerBinary unless
// opts.Bin says otherwise, in a temporary directory unless opts.Dir does.
// The server is killed when the test ends; if the test failed, its
// warnings, errors and last lines are logged.
func StartServer(t testing.TB, opts Options) *Process {
	t.Helper()
	if opts.Bin == "" {
		opts.Bin = ServerBinary(t)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	p, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() && p.log != nil {
			log := p.Log()
			t.Logf("server log, errors and warnings:\n%s\nlast lines:\n%s", problems(log, 20), lastLines(log, 10))
		}
	})
	return p
}

// ready reports whether GET url answers 200.
func ready(c *http.Client, url string) bool {
	res, err := c.Get(url)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// Log returns what the server has written to stdout and stderr so far
// ("" when Options.Log took it).
func (p *Process) Log() string {
	if p.log == nil {
		return ""
	}
	return p.log.String()
}

// String is the log, so that a test can print the process.
func (p *Process) String() string { return p.Log() }

func (p *Process) logSuffix() string {
	if p.log == nil {
		return ""
	}
	return "; its log:\n" + lastLines(p.Log(), 40)
}

// PID is the server's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the server.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Done is closed when the server has exited; Err is then its exit status.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the server's exit status once Done is closed (nil for a clean
// exit), and nil before.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Stop sends SIGTERM and waits up to timeout for the server to exit; it
// returns the exit status, or an error after killing a server that did not
// exit in time.
func (p *Process) Stop(timeout time.Duration) error {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("the server did not exit within %v of SIGTERM", timeout)
	}
}

// Kill kills the server, if it still runs, and waits for it to exit.
func (p *Process) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// SyncBuffer is a bytes.Buffer that goroutines may write to while a test
// reads it: a process's output, a logger shared by parallel queries.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// problems returns the first n lines of log at level WARN or ERROR.
func problems(log string, n int) string {
	var found []string
	for line := range strings.SplitSeq(log, "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
			found = append(found, line)
		}
		if len(found) == n {
			break
		}
	}
	return strings.Join(found, "\n")
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
