package migrations_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
)

// TestReportDirtyTriggers runs writes against the three logged tables and
// checks what report_dirty holds after each: every inserted or deleted row
// logs its customer and UTC day (a multi-row statement each of its rows),
// an update of a column the reports read logs the old and the new, and an
// update of any other column logs nothing.
func TestReportDirtyTriggers(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO customers (id) VALUES ('a'), ('b')`,
		`INSERT INTO events (customer_id, type, occurred_at) VALUES ('a', 'seed', '2026-01-01T00:00:00Z')`,
		`INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, fired_at) VALUES ('a', 'seed', '1', 'v', '2026-01-01T00:00:00Z')`,
		`DELETE FROM report_dirty`,
	} {
		_, err := db.Pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	for _, tc := range []struct {
		name, sql string
		want      []string // source/customer/day rows, sorted
	}{
		{"transitions inserted", `INSERT INTO stage_transitions (customer_id, to_stage, occurred_at)
			VALUES ('a', 'reach', '2026-03-01T23:30:00-02:00'), ('b', 'reach', '2026-03-02T10:00:00Z'), ('b', 'loyalty', '2026-03-02T11:00:00Z')`,
			[]string{"stage_transitions/a/2026-03-02", "stage_transitions/b/2026-03-02", "stage_transitions/b/2026-03-02"}},
		{"transition moved", `UPDATE stage_transitions SET occurred_at = '2026-04-01T00:00:00Z' WHERE customer_id = 'a'`,
			[]string{"stage_transitions/a/2026-03-02", "stage_transitions/a/2026-04-01"}},
		{"transitions deleted", `DELETE FROM stage_transitions WHERE customer_id = 'b'`,
			[]string{"stage_transitions/b/2026-03-02", "stage_transitions/b/2026-03-02"}},
		{"events inserted", `INSERT INTO events (customer_id, type, occurred_at) VALUES ('a', 'x', '2026-05-01T00:00:00Z'), ('b', 'x', '2026-05-02T00:00:00Z')`,
			[]string{"events/a/2026-05-01", "events/b/2026-05-02"}},
		{"event evaluated", `UPDATE events SET evaluated_at = now(), facts = '{}'`, nil},
		{"event retyped", `UPDATE events SET type = 'y' WHERE customer_id = 'b'`,
			[]string{"events/b/2026-05-02", "events/b/2026-05-02"}},
		{"events deleted", `DELETE FROM events WHERE type = 'seed'`, []string{"events/a/2026-01-01"}},
		{"firing inserted", `INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, fired_at) VALUES ('b', 'r', '1', 'v', '2026-06-01T00:00:00Z')`,
			[]string{"rule_firings/b/2026-06-01"}},
		{"firing renamed", `UPDATE rule_firings SET rule = 'r2' WHERE customer_id = 'b'`,
			[]string{"rule_firings/b/2026-06-01", "rule_firings/b/2026-06-01"}},
		{"firings deleted", `DELETE FROM rule_firings`, []string{"rule_firings/a/2026-01-01", "rule_firings/b/2026-06-01"}},
		{"nothing deleted", `DELETE FROM rule_firings`, nil},
	} {
		_, err := db.Pool.Exec(ctx, tc.sql)
		require.NoError(t, err, tc.name)
		var got []string
		require.NoError(t, db.Pool.QueryRow(ctx, `WITH d AS (DELETE FROM report_dirty RETURNING *)
			SELECT COALESCE(array_agg(source || '/' || customer_id || '/' || day ORDER BY 1), '{}') FROM d`).Scan(&got), tc.name)
		if len(got) == 0 {
			got = nil
		}
		require.Equal(t, tc.want, got, tc.name)
	}
}
