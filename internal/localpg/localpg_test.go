package localpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// testServerURL is the server EnsureDatabase tests create databases on:
// TEST_DATABASE_URL's server, or the local default.
func testServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultCandidates()[0]
}

// uniqueName returns a database name no other test uses, dropped in cleanup.
func uniqueName(t *testing.T, serverURL string) string {
	t.Helper()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	name := "localpg_test_" + hex.EncodeToString(b)
	t.Cleanup(func() { dropDatabase(t, serverURL, name) })
	return name
}

func dropDatabase(t *testing.T, serverURL, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adminURL, err := withDatabase(serverURL, "postgres")
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, adminURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize())
	require.NoError(t, err)
}

// closedPortURL returns a candidate URL on a 127.0.0.1 port nobody listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	port, err := freePort()
	require.NoError(t, err)
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/?sslmode=disable"
}

func currentDatabase(ctx context.Context, t *testing.T, dbURL string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var name string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&name))
	return name
}

func TestFind(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)

	t.Run("DefaultCandidatesFindLocalServer", func(t *testing.T) {
		t.Parallel()
		name := uniqueName(t, DefaultCandidates()[0])

		res, err := Find(ctx, &Options{Database: name, Logger: testLogger(t)})
		require.NoError(t, err)
		t.Log(res.How)
		require.Equal(t, "using local Postgres at 127.0.0.1:5432 (database "+name+", created)", res.How)
		require.Equal(t, name, currentDatabase(ctx, t, res.URL))
		require.NoError(t, res.Stop())

		res, err = Find(ctx, &Options{Database: name})
		require.NoError(t, err)
		require.Equal(t, "using local Postgres at 127.0.0.1:5432 (database "+name+", already existed)", res.How)
	})

	t.Run("SkipsCandidatesThatDoNotAnswer", func(t *testing.T) {
		t.Parallel()
		name := uniqueName(t, testServerURL())

		res, err := Find(ctx, &Options{
			Database:   name,
			Candidates: []string{closedPortURL(t), testServerURL()},
		})
		require.NoError(t, err)
		require.Contains(t, res.How, "(database "+name+", created)")
		require.Equal(t, name, currentDatabase(ctx, t, res.URL))
	})

	t.Run("NoThrowawayNamesWhatItTried", func(t *testing.T) {
		t.Parallel()
		first, second := closedPortURL(t), "postgres:///?host=/nonexistent-ciclo-dir&user=postgres"

		res, err := Find(ctx, &Options{Candidates: []string{first, second}})
		require.Nil(t, res)
		require.ErrorIs(t, err, ErrNoPostgres)
		cfg, perr := pgx.ParseConfig(first)
		require.NoError(t, perr)
		require.ErrorContains(t, err, "127.0.0.1:"+strconv.Itoa(int(cfg.Port)))
		require.ErrorContains(t, err, "unix socket /nonexistent-ciclo-dir/.s.PGSQL.5432")
		require.ErrorContains(t, err, "set DATABASE_URL")
		t.Log(err)
	})

	t.Run("RejectsBadCandidateAndName", func(t *testing.T) {
		t.Parallel()

		_, err := Find(ctx, &Options{Candidates: []string{"host=localhost user=postgres"}})
		require.ErrorIs(t, err, ErrNoPostgres)
		require.ErrorContains(t, err, "is not a postgres:// URL")

		_, err = Find(ctx, &Options{Database: string(make([]byte, 64))})
		require.ErrorContains(t, err, "longer than 63 bytes")
	})

	t.Run("StartsThrowawayCluster", func(t *testing.T) {
		t.Parallel()
		start := time.Now()

		res, err := Find(ctx, &Options{
			Candidates:     []string{closedPortURL(t)},
			AllowThrowaway: true,
			Logger:         testLogger(t),
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = res.Stop() })
		t.Logf("%s (took %s)", res.How, time.Since(start).Round(time.Millisecond))
		require.Regexp(t, `^started a throwaway Postgres \d+ cluster in .*ciclo-pg-\S+ on port \d+.*; it is deleted on exit$`, res.How)
		require.DirExists(t, res.dir)
		require.Contains(t, res.How, res.dir)

		conn, err := pgx.Connect(ctx, res.URL)
		require.NoError(t, err)
		var one int
		require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
		require.Equal(t, 1, one)
		var db string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&db))
		require.Equal(t, DatabaseDefault, db)
		require.NoError(t, conn.Close(ctx))

		stopStart := time.Now()
		require.NoError(t, res.Stop())
		t.Logf("stop took %s", time.Since(stopStart).Round(time.Millisecond))
		require.NoDirExists(t, res.dir)
		require.NoError(t, res.Stop(), "Stop is idempotent")

		dialCtx, dialCancel := context.WithTimeout(ctx, 3*time.Second)
		defer dialCancel()
		_, err = pgx.Connect(dialCtx, res.URL)
		require.Error(t, err, "server still answers after Stop")
		cfg, err := pgx.ParseConfig(res.URL)
		require.NoError(t, err)
		_, err = net.DialTimeout("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), time.Second)
		require.Error(t, err, "port still open after Stop")
	})
}

func TestEnsureDatabase(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)

	t.Run("Idempotent", func(t *testing.T) {
		t.Parallel()
		name := uniqueName(t, testServerURL())
		dbURL, err := withDatabase(testServerURL(), name)
		require.NoError(t, err)

		created, err := EnsureDatabase(ctx, dbURL)
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, name, currentDatabase(ctx, t, dbURL))

		created, err = EnsureDatabase(ctx, dbURL)
		require.NoError(t, err)
		require.False(t, created)
	})

	t.Run("ConcurrentCallersCreateOnce", func(t *testing.T) {
		t.Parallel()
		name := uniqueName(t, testServerURL())
		dbURL, err := withDatabase(testServerURL(), name)
		require.NoError(t, err)

		const n = 6
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			created int
			errs    []error
		)
		for range n {
			wg.Go(func() {
				c, err := EnsureDatabase(ctx, dbURL)
				mu.Lock()
				defer mu.Unlock()
				if c {
					created++
				}
				if err != nil {
					errs = append(errs, err)
				}
			})
		}
		wg.Wait()
		require.Empty(t, errs)
		require.Equal(t, 1, created)
	})

	t.Run("QuotesName", func(t *testing.T) {
		t.Parallel()
		name := uniqueName(t, testServerURL()) + `-Odd "name"`
		t.Cleanup(func() { dropDatabase(t, testServerURL(), name) })
		dbURL, err := withDatabase(testServerURL(), name)
		require.NoError(t, err)

		created, err := EnsureDatabase(ctx, dbURL)
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, name, currentDatabase(ctx, t, dbURL))
	})

	t.Run("NoDatabaseInURL", func(t *testing.T) {
		t.Parallel()
		_, err := EnsureDatabase(ctx, "postgres://postgres@127.0.0.1:5432?sslmode=disable")
		require.ErrorContains(t, err, "names no database")
	})

	t.Run("ServerDown", func(t *testing.T) {
		t.Parallel()
		dbURL, err := withDatabase(closedPortURL(t), "x")
		require.NoError(t, err)
		_, err = EnsureDatabase(ctx, dbURL)
		require.ErrorContains(t, err, "connect to 127.0.0.1:")
	})
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		in, db  string
		want    string
		wantErr string
	}{
		{name: "TCP", in: "postgres://postgres@127.0.0.1:5432/?sslmode=disable", db: "ciclo",
			want: "postgres://postgres@127.0.0.1:5432/ciclo?sslmode=disable"},
		{name: "ReplacesDatabase", in: "postgresql://u:p@h/other", db: "ciclo",
			want: "postgresql://u:p@h/ciclo"},
		{name: "UnixSocket", in: "postgres:///?host=/var/run/postgresql&user=postgres", db: "ciclo",
			want: "postgres:///ciclo?host=/var/run/postgresql&user=postgres"},
		{name: "EscapesName", in: "postgres://h/", db: "a b/c", want: "postgres://h/a%20b%2Fc"},
		{name: "NotURL", in: "host=h user=u", db: "ciclo", wantErr: "not a postgres:// URL"},
		{name: "HidesPassword", in: "mysql://u:secret@h/", db: "ciclo", wantErr: "mysql://u:xxxxx@h/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := withDatabase(tt.in, tt.db)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "secret")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			cfg, err := pgx.ParseConfig(got)
			require.NoError(t, err)
			require.Equal(t, tt.db, cfg.Database)
		})
	}
}

func TestSortByVersionDesc(t *testing.T) {
	t.Parallel()

	got := sortByVersionDesc([]string{
		"/usr/lib/postgresql/9.6/bin",
		"/usr/lib/postgresql/16/bin",
		"/usr/lib/postgresql/10/bin",
		"/usr/pgsql-17/bin",
		"/usr/lib/postgresql/9.4/bin",
	})
	require.Equal(t, []string{
		"/usr/pgsql-17/bin",
		"/usr/lib/postgresql/16/bin",
		"/usr/lib/postgresql/10/bin",
		"/usr/lib/postgresql/9.6/bin",
		"/usr/lib/postgresql/9.4/bin",
	}, got)
}

func TestDescribeAddr(t *testing.T) {
	t.Parallel()

	require.Equal(t, "127.0.0.1:5432", describeAddr("127.0.0.1", 5432))
	require.Equal(t, "[::1]:5433", describeAddr("::1", 5433))
	require.Equal(t, "unix socket /var/run/postgresql/.s.PGSQL.5432", describeAddr("/var/run/postgresql", 5432))
}
