package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/report"
)

func TestReportCmd(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	for _, stmt := range []string{
		`INSERT INTO customers (id) VALUES ('a'), ('b')`,
		`INSERT INTO stage_transitions (customer_id, from_stage, to_stage, occurred_at) VALUES
			('a', NULL, 'reach', '2026-02-02'), ('a', 'reach', 'acquisition', '2026-02-03'), ('b', NULL, 'reach', '2026-03-01')`,
		`INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, fired_at) VALUES ('a', 'welcome', 'event:1', 'v', '2026-02-03')`,
	} {
		_, err := db.Pool.Exec(ctx, stmt)
		require.NoError(t, err)
	}
	before := rowCounts(t, db)
	args := func(extra ...string) []string {
		return append([]string{"report", "--database-url", db.URL, "--rules", "../../rules.example.yaml",
			"--from", "2026-02-01", "--to", "2026-03-31"}, extra...)
	}

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := runCLI(t, args("--format", "json")...)
		require.Equal(t, 0, code, stderr)
		var l report.Lifecycle
		require.NoError(t, json.Unmarshal([]byte(stdout), &l))
		require.Len(t, l.Periods, 2)
		require.Equal(t, int64(1), l.Periods[0].NewCustomers)
		require.Equal(t, int64(1), l.Periods[0].Acquired)
		require.Equal(t, report.StageCount{Stage: "reach", Customers: 1}, l.Funnel[0])
		require.Equal(t, report.StageCount{Stage: "acquisition", Customers: 1}, l.Funnel[1])
	})
	t.Run("Table", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := runCLI(t, args("--period", "week")...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "Lifecycle report, 2026-02-01 to 2026-03-31 by week")
		require.Contains(t, stdout, "2026-W06")
	})
	t.Run("RulesCSV", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := runCLI(t, "report", "rules", "--database-url", db.URL, "--rules", "../../rules.example.yaml",
			"--from", "2026-02-01", "--format", "csv")
		require.Equal(t, 0, code, stderr)
		rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
		require.NoError(t, err)
		require.Equal(t, "rule", rows[0][0])
		require.Equal(t, []string{"welcome", "1"}, rows[1][:2], "the rule set's rules in file order")
	})
	t.Run("BadInput", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"report", "--period", "year"}, `period "year": use week, month or quarter`},
			{[]string{"report", "--from", "2026-13-01"}, `from "2026-13-01": want a date as YYYY-MM-DD`},
			{[]string{"report", "--from", "2026-03-01", "--to", "2026-02-01"}, "from 2026-03-01 is not before to 2026-02-02"},
			{[]string{"report", "--format", "xml"}, `format "xml": use table, json or csv`},
			{[]string{"report", "--conversion-window", "soon"}, `--conversion-window "soon": want a positive duration`},
			{[]string{"report", "rules", "--rules", "no-such.yaml"}, "--rules: "},
		} {
			_, stderr, code := runCLI(t, append(tc.args, "--database-url", db.URL)...)
			require.Equal(t, 1, code, tc.args)
			require.Contains(t, stderr, tc.want, tc.args)
		}
	})
	t.Cleanup(func() { require.Equal(t, before, rowCounts(t, db), "report only reads") })
}
