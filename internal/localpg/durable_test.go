package localpg

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// reachableTempDir returns a temporary folder every user can traverse, as
// the postgres account must when the tests run as root.
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	return dir
}

func exec1(ctx context.Context, t *testing.T, dbURL, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	require.NoError(t, err)
}

func countNotes(ctx context.Context, t *testing.T, dbURL string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&n))
	return n
}

// TestFindDurable checks the data folder: with no local server it is
// created and survives Stop; once it holds a cluster it is used even when
// a local server answers; a running one is shared, not stopped by the
// second user.
func TestFindDurable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dataDir := filepath.Join(reachableTempDir(t), "data", "pgdata")

	res, err := Find(ctx, &Options{Candidates: []string{closedPortURL(t)}, DataDir: dataDir, Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Stop() })
	t.Log(res.How)
	require.Regexp(t, `^using the durable Postgres \d+ cluster in `+dataDir+` \(new; database ciclo on 127\.0\.0\.1:\d+\).*; it is kept across restarts$`, res.How)
	require.Equal(t, dataDir, res.DataDir)
	exec1(ctx, t, res.URL, "CREATE TABLE notes (body text)")
	exec1(ctx, t, res.URL, "INSERT INTO notes VALUES ($1)", "kept")

	// A second user of the running cluster shares it and does not stop it.
	shared, err := Find(ctx, &Options{OnlyDataDir: true, DataDir: dataDir, Logger: testLogger(t)})
	require.NoError(t, err)
	require.Equal(t, res.URL, shared.URL)
	require.NoError(t, shared.Stop())
	require.Equal(t, 1, countNotes(ctx, t, res.URL), "still running after the second user stopped")

	require.NoError(t, res.Stop())
	require.FileExists(t, filepath.Join(dataDir, "PG_VERSION"), "Stop keeps the folder")
	require.NoFileExists(t, filepath.Join(dataDir, "postmaster.pid"), "Stop stops the server")

	// Restarted, with a local server answering now: the folder holding
	// the data wins, and the row is there.
	again, err := Find(ctx, &Options{Candidates: []string{testServerURL()}, DataDir: dataDir, Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = again.Stop() })
	require.Contains(t, again.How, "(existing; database ciclo on 127.0.0.1:")
	require.Equal(t, 1, countNotes(ctx, t, again.URL))
	require.NoError(t, again.Stop())

	t.Run("RefusesFolderThatIsNotACluster", func(t *testing.T) {
		t.Parallel()
		dir := reachableTempDir(t)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644))
		_, err := Find(ctx, &Options{OnlyDataDir: true, DataDir: dir})
		require.ErrorContains(t, err, "is not empty and holds no Postgres cluster")
		require.ErrorContains(t, err, "set CICLO_DATA_DIR to another folder")
	})
}

func TestDefaultDataDir(t *testing.T) {
	t.Parallel()
	dir, err := DefaultDataDir()
	require.NoError(t, err)
	require.True(t, filepath.IsAbs(dir), dir)
	require.Equal(t, "pgdata", filepath.Base(dir))
	if os.Geteuid() == 0 {
		require.Equal(t, "/var/lib/ciclo/pgdata", dir)
	}
}
