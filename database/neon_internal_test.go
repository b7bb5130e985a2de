package database

import (
	"crypto/tls"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestVerifyNeonCertificatesVerifiesOnlyNeonHosts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		url    string
		verify bool // after verifyNeonCertificates, every TLS config verifies
	}{
		{"Neon pooled URL as Neon prints it",
			"postgres://u:p@ep-x-pooler.us-east-2.aws.neon.tech/db?sslmode=require&channel_binding=require", true},
		{"Neon direct URL, postgresql scheme",
			"postgresql://u:p@ep-x.us-east-2.aws.neon.tech:5432/db?sslmode=require", true},
		{"Neon with several hosts",
			"postgres://u:p@ep-a.eu-central-1.aws.neon.tech,ep-b.eu-central-1.aws.neon.tech/db?sslmode=require", true},
		{"Neon without SNI still names the host to verify",
			"postgres://u:p@ep-x.us-east-2.aws.neon.tech/db?sslmode=require&sslsni=0", true},
		{"Neon with verify-full already verifies",
			"postgres://u:p@ep-x.us-east-2.aws.neon.tech/db?sslmode=verify-full", true},
		{"another host keeps libpq's require: encrypt, do not verify",
			"postgres://u:p@db.example.com/db?sslmode=require", false},
		{"a look-alike host is not Neon",
			"postgres://u:p@ep-x.neon.tech.example.com/db?sslmode=require", false},
		{"a host merely ending in neon.tech is not Neon",
			"postgres://u:p@evilneon.tech/db?sslmode=require", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pgx.ParseConfig(tt.url)
			if err != nil {
				t.Fatalf("pgx.ParseConfig: %v", err)
			}
			verifyNeonCertificates(c)
			if c.TLSConfig == nil {
				t.Fatal("no TLS config for an sslmode that requires TLS")
			}
			hosts := []string{c.Host}
			configs := []*tls.Config{c.TLSConfig}
			for _, fb := range c.Fallbacks {
				hosts = append(hosts, fb.Host)
				configs = append(configs, fb.TLSConfig)
			}
			for i, tc := range configs {
				if tc == nil {
					t.Fatalf("host %s has no TLS config", hosts[i])
				}
				if tc.InsecureSkipVerify == tt.verify {
					t.Errorf("host %s: InsecureSkipVerify = %v, want %v", hosts[i], tc.InsecureSkipVerify, !tt.verify)
				}
				if tt.verify && (tc.ServerName != hosts[i] || tc.VerifyPeerCertificate != nil) {
					t.Errorf("host %s: ServerName %q, custom VerifyPeerCertificate %v; want the host's name and standard verification",
						hosts[i], tc.ServerName, tc.VerifyPeerCertificate != nil)
				}
			}
			if strings.Contains(tt.url, "several") && len(hosts) < 2 {
				t.Fatalf("hosts %v", hosts)
			}
		})
	}
}

func TestVerifyNeonCertificatesLeavesPlainConnectionsAlone(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"postgres://u:p@ep-x.us-east-2.aws.neon.tech/db?sslmode=disable",
		"postgres://u:p@ep-x.us-east-2.aws.neon.tech/db?sslmode=prefer",
		"postgres://u:p@ep-x.us-east-2.aws.neon.tech/db?sslmode=allow",
	} {
		c, err := pgx.ParseConfig(u)
		if err != nil {
			t.Fatal(err)
		}
		verifyNeonCertificates(c) // must not panic on nil TLS configs
		if c.TLSConfig != nil && c.TLSConfig.InsecureSkipVerify {
			t.Errorf("%s: a Neon TLS config does not verify", u)
		}
		for _, fb := range c.Fallbacks {
			if fb.TLSConfig != nil && fb.TLSConfig.InsecureSkipVerify {
				t.Errorf("%s: a Neon fallback TLS config does not verify", u)
			}
		}
	}
}

func TestPgxUnderstandsNeonsChannelBinding(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"require", "prefer", "disable"} {
		c, err := pgx.ParseConfig("postgres://u:p@ep-x-pooler.us-east-2.aws.neon.tech/db?sslmode=require&channel_binding=" + mode)
		if err != nil {
			t.Fatalf("channel_binding=%s: %v", mode, err)
		}
		if c.ChannelBinding != mode {
			t.Errorf("channel_binding=%s parsed as %q", mode, c.ChannelBinding)
		}
		// Sent as a run-time parameter, the server would refuse it.
		if _, ok := c.RuntimeParams["channel_binding"]; ok {
			t.Errorf("channel_binding=%s is sent to the server as a run-time parameter", mode)
		}
	}
}

func TestSQLiteDSNCarriesThePragmasEveryConnectionNeeds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url, wantPath string
		memory        bool
	}{
		{"sqlite::memory:", ":memory:", true},
		{"sqlite://todo.db", "todo.db", false},
		{"sqlite:///var/lib/app/todo.db", "/var/lib/app/todo.db", false},
		{"sqlite://100%/a%20b.db", "100%25/a%2520b.db", false}, // SQLite decodes %XX: escaped
	}
	for _, tt := range tests {
		dsn, memory, err := sqliteDSN(tt.url)
		if err != nil {
			t.Fatalf("sqliteDSN(%q): %v", tt.url, err)
		}
		if memory != tt.memory {
			t.Errorf("%s: memory = %v", tt.url, memory)
		}
		path, query, ok := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
		if !ok || !strings.HasPrefix(dsn, "file:") || path != tt.wantPath {
			t.Fatalf("%s: DSN %q, want file:%s?…", tt.url, dsn, tt.wantPath)
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Fatal(err)
		}
		pragmas := strings.Join(q["_pragma"], " ")
		for _, want := range []string{"busy_timeout(10000)", "foreign_keys(1)"} {
			if !strings.Contains(pragmas, want) {
				t.Errorf("%s: pragmas %q lack %s", tt.url, pragmas, want)
			}
		}
		if wal := strings.Contains(pragmas, "journal_mode(WAL)"); wal == tt.memory {
			t.Errorf("%s: journal_mode(WAL) present = %v, want %v", tt.url, wal, !tt.memory)
		}
		if q.Get("_txlock") != "immediate" {
			t.Errorf("%s: _txlock = %q, want immediate", tt.url, q.Get("_txlock"))
		}
	}
}
