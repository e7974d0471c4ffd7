package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/localpg"
)

// TestServeDataDir runs `ciclo serve` with no DATABASE_URL on the embedded
// cluster in a data folder: an event accepted before a restart is still
// there after it, and the log says where the data lives and how to move it.
func TestServeDataDir(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	base := t.TempDir()
	// The postgres account (the tests may run as root) must reach the folder.
	require.NoError(t, os.Chmod(base, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(base), 0o755))
	dataDir := filepath.Join(base, "pgdata")
	t.Cleanup(func() { stopLeftoverPostgres(t, dataDir) })
	env := []string{"CICLO_DATA_DIR=" + dataDir, "CICLO_OUTBOX_DIR=" + filepath.Join(base, "outbox")}
	const event = `{"customer_id":"dur-1","type":"order_placed","idempotency_key":"dur-order-1","email":"dur-1@example.com","properties":{"total":10}}`

	run := func(wantDuplicate bool, check func(p *serveProcess)) string {
		t.Helper()
		p := startServeEnv(t, bin, env...)
		resp := postBody(t, p.addr, event)
		require.Equal(t, http.StatusAccepted, resp.code, resp.body)
		require.Contains(t, resp.body, `"duplicate":`+strconv.FormatBool(wantDuplicate))
		if check != nil {
			check(p)
		}
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		lines := waitFor(t, p.logDone, 30*time.Second, "the log to end")
		require.NoError(t, p.cmd.Wait(), strings.Join(lines, "\n"))
		return strings.Join(lines, "\n")
	}

	first := run(false, nil)
	require.Contains(t, first, "using the durable Postgres")
	require.Contains(t, first, "cluster in "+dataDir+" (new;")
	require.Contains(t, first, "it is kept across restarts")
	require.Contains(t, first, `"data_dir":"`+dataDir+`"`)
	require.Contains(t, first, "pg_dump -Fc")
	require.NoFileExists(t, filepath.Join(dataDir, "postmaster.pid"), "serve stopped its cluster on exit")

	// Restarted: the same event is a duplicate, and the one event row is
	// there, read straight from the cluster.
	second := run(true, func(p *serveProcess) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, startedClusterURL(t, p.logSoFar()))
		require.NoError(t, err)
		defer conn.Close(ctx)
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM events WHERE customer_id = 'dur-1' AND type NOT LIKE 'points_%'").Scan(&n))
		require.Equal(t, 1, n)
	})
	require.Contains(t, second, "cluster in "+dataDir+" (existing;")
}

type answer struct {
	code int
	body string
}

// postBody posts one event body with the test token.
func postBody(t *testing.T, addr, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/events", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{resp.StatusCode, string(b)}
}

var clusterURLRe = regexp.MustCompile(`database (\S+) on 127\.0\.0\.1:(\d+)`)

// startedClusterURL reads the embedded cluster's address from serve's log.
func startedClusterURL(t *testing.T, lines []string) string {
	t.Helper()
	for _, line := range lines {
		var rec struct{ Msg string }
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if m := clusterURLRe.FindStringSubmatch(rec.Msg); m != nil {
			return "postgres://postgres@127.0.0.1:" + m[2] + "/" + m[1] + "?sslmode=disable"
		}
	}
	require.FailNow(t, "no cluster address in the log", strings.Join(lines, "\n"))
	return ""
}

// stopLeftoverPostgres stops a cluster a failed test left running in dir.
func stopLeftoverPostgres(t *testing.T, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err == nil && pid > 0 {
		t.Logf("stopping Postgres %d left running in %s", pid, dir)
		_ = syscall.Kill(pid, syscall.SIGQUIT)
	}
}

// TestMigrateDataDir runs `ciclo migrate` with no DATABASE_URL on a data
// folder: the schema it reports current is still there afterwards.
func TestMigrateDataDir(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	require.NoError(t, os.Chmod(base, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(base), 0o755))
	dataDir := filepath.Join(base, "pgdata")
	t.Cleanup(func() { stopLeftoverPostgres(t, dataDir) })

	stdout, stderr, code := runCLI(t, "migrate", "--database-url", "", "--data-dir", dataDir)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "schema is current")
	require.FileExists(t, filepath.Join(dataDir, "PG_VERSION"))
	require.NoFileExists(t, filepath.Join(dataDir, "postmaster.pid"), "migrate stopped the cluster it started")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := localpg.Find(ctx, &localpg.Options{DataDir: dataDir, OnlyDataDir: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Stop() })
	conn, err := pgx.Connect(ctx, res.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n))
	require.Zero(t, n)
	var jobs bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT to_regclass('river_job') IS NOT NULL").Scan(&jobs))
	require.True(t, jobs, "River's tables are there")
}
