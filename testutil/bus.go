package testutil

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/taskql/server/events"
	"github.com/taskql/server/model"
)

// NewBus returns the event bus the server would use on db's dialect,
// started, with store (if not nil) publishing to it, closed when the test
// ends: in process on SQLite; LISTEN/NOTIFY on PostgreSQL, on a channel of
// its own, so that parallel tests sharing the database do not hear each
// other.
func NewBus(t testing.TB, db *bun.DB, store *model.Tasks) events.Bus {
	t.Helper()
	var bus events.Bus
	if db.Dialect().Name() == dialect.PG {
		pg := &events.Postgres{URL: os.Getenv("TEST_DATABASE_URL"), Channel: "task_changed_" + randomHex(8)}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pg.Start(ctx); err != nil {
			t.Fatalf("start the PostgreSQL event bus: %v", err)
		}
		bus = pg
	} else {
		bus = &events.Local{}
	}
	t.Cleanup(bus.Close)
	if store != nil {
		store.PublishTo(bus)
	}
	return bus
}
