package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The helpers of the tests that run the server as processes, on a
// PostgreSQL cluster of their own.

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
