package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/examplerules"
	"github.com/ciclohq/ciclo/internal/localpg"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
)

// TestDemo runs the README's first command against a test schema: the
// first order moves the customer to conversion, issues a coupon and writes
// the email to the outbox. It runs the real rules.example.yaml with the
// real clock: the demo customer gets a time zone outside its quiet hours,
// so this passes at any hour.
func TestDemo(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	outbox := filepath.Join(t.TempDir(), "outbox")

	stdout, stderr, code := runCLI(t, "demo", "--rules", "../../rules.example.yaml",
		"--database-url", db.URL, "--outbox-dir", outbox, "--api-token", "demo-token")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	zone := regexp.MustCompile(`(?m)^customer time zone: (\S+) \(local \d\d:\d\d, outside quiet hours 21:00-08:00\)$`).FindStringSubmatch(stdout)
	require.NotNil(t, zone, "the output names the customer's time zone:\n%s", stdout)
	require.Contains(t, demoZones, zone[1])
	require.Contains(t, stdout, fmt.Sprintf(`"timezone":%q`, zone[1]))
	require.Contains(t, stdout, "→ 202 Accepted")
	require.Contains(t, stdout, `stage:  reach → conversion by rule "first-order-bonus"`)
	require.Contains(t, stdout, "coupon: ")
	require.Contains(t, stdout, "email:  sent, written to "+outbox)

	files, err := os.ReadDir(outbox)
	require.NoError(t, err)
	require.Len(t, files, 1)
	// The unsubscribe link points at the port the demo listens on, not 0.
	port := regexp.MustCompile(`POST http://127\.0\.0\.1:(\d+)/v1/events`).FindStringSubmatch(stdout)
	require.NotNil(t, port, stdout)
	eml, err := os.ReadFile(filepath.Join(outbox, files[0].Name()))
	require.NoError(t, err)
	link := regexp.MustCompile(`(?m)^List-Unsubscribe:\s*<(http://localhost:(\d+)/[^>]+)>`).FindStringSubmatch(string(eml))
	require.NotNil(t, link, "List-Unsubscribe with an http link:\n%s", eml)
	require.Equal(t, port[1], link[2], "unsubscribe link %s", link[1])
	require.Contains(t, string(eml), "http://localhost:"+port[1]+"/", "the body's link too")
	require.Equal(t, 1, db.Count(t, "customers", "timezone = $1", zone[1]))
	require.Equal(t, 1, db.Count(t, "stage_transitions", "to_stage = 'conversion' AND rule = 'first-order-bonus'"))
	require.Equal(t, 1, db.Count(t, "coupons", "rule = 'first-order-bonus' AND expires_at > now() + interval '13 days'"))
}

// TestDemoAllZonesInQuietHours runs the demo on rules whose quiet hours
// cover every demo time zone now: the email is held, and the demo says so
// and succeeds, since that is what the rules ask for.
func TestDemoAllZonesInQuietHours(t *testing.T) {
	t.Parallel()
	// Every demo zone is a whole number of hours from UTC, so all share the
	// minute of the hour. Quiet hours open for the one minute 30 minutes
	// from now's minute, in any hour, cover them all for the whole test.
	now := time.Now()
	open := (now.Minute() + 30) % 60
	window := fmt.Sprintf("%02d:%02d-00:%02d", (open+1)/60, (open+1)%60, open)
	qh := parseQuietHours(t, window)
	zone, err := pickDemoZone(qh, now)
	require.NoError(t, err)
	require.True(t, zone.Held, "quiet hours %s hold every demo zone at %s", window, now)

	db := testdb.New(t)
	outbox := filepath.Join(t.TempDir(), "outbox")
	stdout, stderr, code := runCLI(t, "demo", "--rules", examplerules.WithQuietHours(t, window),
		"--database-url", db.URL, "--outbox-dir", outbox, "--api-token", "demo-token")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "customer time zone: UTC (local ")
	require.Contains(t, stdout, ") is in quiet hours "+window+",\n  so the email is expected to wait until ")
	require.Contains(t, stdout, `"timezone":"UTC"`)
	require.Contains(t, stdout, `stage:  reach → conversion by rule "first-order-bonus"`)
	require.Contains(t, stdout, "coupon: ")
	require.Regexp(t, `email:  held for quiet hours `+window+` until \w{3}, \d\d \w{3} \d{4} 00:`+fmt.Sprintf("%02d", open)+`:00 UTC`, stdout)
	require.Contains(t, stdout, "This is expected, not an error")
	require.NotContains(t, stdout, "email:  sent")

	files, err := os.ReadDir(outbox)
	if !os.IsNotExist(err) {
		require.NoError(t, err)
	}
	require.Empty(t, files, "no email was written")
	require.Equal(t, 1, db.Count(t, "deliveries", "status = 'queued'"))
	require.Equal(t, 1, db.Count(t, "river_job", "kind = 'ciclo.dispatch' AND state = 'scheduled' AND scheduled_at > now()"))
}

func parseQuietHours(t *testing.T, window string) *rules.QuietHours {
	t.Helper()
	rs, err := rules.Parse("r.yaml", []byte("version: 1\nstages: [a]\ndefaults:\n  quiet_hours: \""+window+"\"\nrules: []\n"), rules.ParseOptions{})
	require.NoError(t, err)
	require.NotNil(t, rs.Defaults.QuietHours)
	return rs.Defaults.QuietHours
}

// TestPickDemoZone checks the zone choice at fixed instants, by day and by
// night, for rules.example.yaml's quiet hours.
func TestPickDemoZone(t *testing.T) {
	t.Parallel()
	qh := parseQuietHours(t, "21:00-08:00")
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	for _, tc := range []struct {
		now, zone, local string
	}{
		{"2026-11-23T12:00:00Z", "UTC", "12:00"},              // daytime: UTC as before
		{"2026-11-23T08:00:00Z", "UTC", "08:00"},              // the window's end is open
		{"2026-11-23T20:59:00Z", "UTC", "20:59"},              // outside now and 30s later
		{"2026-11-23T20:59:45Z", "America/New_York", "15:59"}, // UTC closes within the wait; Madrid is at 21:59
		{"2026-11-23T21:26:00Z", "America/New_York", "16:26"},
		{"2026-11-24T02:00:00Z", "America/Los_Angeles", "18:00"}, // New York is at 21:00
		{"2026-11-24T05:00:00Z", "Asia/Tokyo", "14:00"},
		{"2026-11-23T07:59:50Z", "Europe/Madrid", "08:59"}, // winter: UTC+1
		{"2026-06-23T06:30:00Z", "Europe/Madrid", "08:30"}, // summer: UTC+2
	} {
		z, err := pickDemoZone(qh, at(tc.now))
		require.NoError(t, err)
		require.False(t, z.Held, tc.now)
		require.Equal(t, tc.zone, z.Name, tc.now)
		require.Equal(t, tc.local, z.Local.Format("15:04"), tc.now)
		require.Equal(t, fmt.Sprintf("customer time zone: %s (local %s, outside quiet hours 21:00-08:00)", tc.zone, tc.local), z.describe(qh))
	}

	// Some zone is open all year round, through the DST changes.
	for now := at("2026-01-01T00:00:00Z"); now.Year() == 2026; now = now.Add(7 * time.Minute) {
		z, err := pickDemoZone(qh, now)
		require.NoError(t, err)
		if z.Held {
			t.Fatalf("no demo zone outside quiet hours at %s", now)
		}
	}

	// No quiet hours: no time zone.
	z, err := pickDemoZone(nil, at("2026-11-23T23:00:00Z"))
	require.NoError(t, err)
	require.Equal(t, "", z.Name)
	require.False(t, z.Held)
	require.Contains(t, z.describe(nil), "no quiet hours")

	// Quiet hours over every zone: the first, held until they end.
	all := parseQuietHours(t, "00:31-00:30")
	z, err = pickDemoZone(all, at("2026-11-23T21:00:00Z"))
	require.NoError(t, err)
	require.True(t, z.Held)
	require.Equal(t, "UTC", z.Name)
	require.Equal(t, at("2026-11-24T00:30:00Z"), z.Open)
	// Open now but closing within the wait: held until the next opening.
	z, err = pickDemoZone(all, at("2026-11-23T00:30:45Z"))
	require.NoError(t, err)
	require.True(t, z.Held)
	require.Equal(t, at("2026-11-24T00:30:00Z"), z.Open)
}

// TestDemoOwnDatabase runs the demo with no DATABASE_URL: its customer
// lands in the local server's ciclo_demo database, not in the database
// serve uses by default (ciclo on the same server).
func TestDemoOwnDatabase(t *testing.T) {
	t.Parallel()
	outbox := filepath.Join(t.TempDir(), "outbox")
	stdout, stderr, code := runCLI(t, "demo", "--rules", "../../rules.example.yaml", "--database-url", "",
		"--outbox-dir", outbox, "--api-token", "demo-token")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	m := regexp.MustCompile(`"customer_id":"(demo-\d+)"`).FindStringSubmatch(stdout)
	require.NotNil(t, m, stdout)

	ctx := context.Background()
	count := func(database string) int {
		t.Helper()
		conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/"+database+"?sslmode=disable")
		if database != demoDatabase {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // no such database: nothing in it
				return 0
			}
		}
		require.NoError(t, err)
		defer conn.Close(ctx)
		var n int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM customers WHERE id = $1", m[1]).Scan(&n)
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P01" && database != demoDatabase {
			return 0 // no customers table: nothing in it
		}
		require.NoError(t, err)
		return n
	}
	require.Equal(t, 1, count(demoDatabase))
	require.Equal(t, 0, count(localpg.DatabaseDefault))
}
