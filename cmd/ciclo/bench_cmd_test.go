package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/bench"
	"github.com/ciclohq/ciclo/internal/testdb"
)

// TestBench runs `ciclo bench --quick --only ingest --format json` against
// a database whose search path is a migrated schema holding a customer, and
// checks the JSON rows carry measured figures, the customer's schema was
// left alone, and the run's own schemas were dropped.
func TestBench(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, "INSERT INTO customers (id, email, stage, created_at) VALUES ('keep-me', 'k@example.com', 'reach', now())")
	require.NoError(t, err)

	stdout, stderr, code := runCLI(t, "bench", "--quick", "--only", "ingest", "--format", "json", "--database-url", db.URL)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "bench:", "a progress line per row on stderr")

	var res bench.Result
	require.NoError(t, json.Unmarshal([]byte(stdout), &res), stdout)
	require.Len(t, res.Rows, 2)
	for i, name := range []string{"ingest/single", "ingest/batch"} {
		row := res.Rows[i]
		require.Equal(t, name, row.Name)
		require.Positive(t, row.Value, name)
		require.Positive(t, row.BaselineValue, name)
		require.Positive(t, row.Ratio, name)
		require.NotNil(t, row.Met, name)
		require.Equal(t, 1, row.Runs, name)
	}
	require.Positive(t, res.Machine.CPUs)
	require.NotEmpty(t, res.Machine.Postgres)

	require.Equal(t, 1, db.Count(t, "customers", ""), "the target schema's customers")
	require.Equal(t, 0, db.Count(t, "events", ""), "the target schema's events")
	require.NotEmpty(t, res.Schemas)
	var left int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)", res.Schemas).Scan(&left))
	require.Zero(t, left, "the schemas the run created (%v) are dropped", res.Schemas)
}

// TestBenchFlags checks that bad flags are refused before anything runs.
func TestBenchFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"UnknownRow", []string{"--only", "ingest,speed"}, `--only "speed": no such row; use one or more of ingest, sweep, event-email, dispatch, jobs`},
		{"Format", []string{"--format", "csv"}, `--format "csv": use table or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, stderr, code := runCLI(t, append([]string{"bench", "--database-url", "postgres://nowhere.invalid/x"}, tt.args...)...)
			require.Equal(t, 1, code)
			require.Contains(t, stderr, tt.want)
		})
	}
}
