package postgres_test

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/taskql/server/postgres"
	"github.com/taskql/server/testutil"
)

// newPostgresBus starts a bus on channel (testutil.NewPostgresBus), closed
// when the test ends. configure, if given, adjusts it before it starts.
func newPostgresBus(t *testing.T, channel string, configure ...func(*postgres.Bus)) *postgres.Bus {
	t.Helper()
	return testutil.NewPostgresBus(t, append([]func(*postgres.Bus){func(p *postgres.Bus) { p.Channel = channel }}, configure...)...)
}

// listenBackends waits until the bus has n PostgreSQL sessions and
// returns them, failing the test after 10s.
func listenBackends(t *testing.T, bus *postgres.Bus, n int) map[int]testutil.Backend {
	t.Helper()
	var got map[int]testutil.Backend
	testutil.WaitFor(t, fmt.Sprintf("%d sessions of the bus", n), func() bool {
		got = testutil.BusBackends(t, bus)
		return len(got) == n
	})
	return got
}

// uniqueChannel is a NOTIFY channel no other test uses.
func uniqueChannel(t *testing.T) string {
	t.Helper()
	return "task_changed_" + strings.ToLower(rand.Text())
}
