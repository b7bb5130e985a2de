package database

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// directProbeRounds is how many times CheckDirect asks each of its two
// connections for its backend: one round suffices behind PgBouncer, which
// hands the most recently freed server connection to the next client;
// more rounds catch a pooler that hands them out in turn.
const directProbeRounds = 3

// CheckDirect returns an error unless connections to the PostgreSQL URL
// rawURL each keep a backend of their own, as LISTEN needs: a
// transaction-mode pooler hands a client's server connection to another
// client between transactions, so a LISTEN made through it is heard by
// whichever client holds that connection, or by nobody.
//
// It opens two connections and asks each, in turn, for its backend's pid
// (pg_backend_pid). Through a transaction-mode pooler both get the same
// backend, or one's backend changes. The pid that pgx was given at
// connection (BackendKeyData) proves nothing: PgBouncer in any mode and
// Neon's proxy in front of a direct connection both send their own, so
// the probe compares only pids that PostgreSQL reports. A session-mode
// pooler passes, as LISTEN works through it.
func CheckDirect(ctx context.Context, rawURL string) error {
	cfg, err := PostgresConfig(rawURL)
	if err != nil {
		return err
	}
	var conns [2]*pgx.Conn
	for i := range conns {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer c.Close(context.WithoutCancel(ctx))
		conns[i] = c
	}
	// owner maps each backend seen to the connection that reported it.
	owner := map[int32]int{}
	for range directProbeRounds {
		for i, c := range conns {
			var pid int32
			// The simple protocol: a prepared statement would itself
			// collide behind such a pooler, with a less telling error.
			if err := c.QueryRow(ctx, "SELECT pg_backend_pid()", pgx.QueryExecModeSimpleProtocol).Scan(&pid); err != nil {
				return fmt.Errorf("read the backend pid: %w", err)
			}
			if o, seen := owner[pid]; seen && o != i {
				return fmt.Errorf("two connections were served by the same PostgreSQL backend (pid %d): "+
					"this URL goes through a transaction-mode pooler, where LISTEN/NOTIFY cannot work; "+
					"use a direct connection (Neon: the host without -pooler)", pid)
			}
			owner[pid] = i
		}
	}
	if len(owner) != len(conns) {
		return fmt.Errorf("a connection's PostgreSQL backend changed between two statements (%d backends for %d connections): "+
			"this URL goes through a transaction-mode pooler, where LISTEN/NOTIFY cannot work; "+
			"use a direct connection (Neon: the host without -pooler)", len(owner), len(conns))
	}
	return nil
}
