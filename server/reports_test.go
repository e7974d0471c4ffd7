package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/report"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/server"
)

type reportsBundle struct {
	db *testdb.DB
	h  http.Handler
}

func setupReports(t *testing.T) *reportsBundle {
	t.Helper()
	db := testdb.New(t)
	rs, _, err := app.LoadRules(filepath.Join("..", "rules.example.yaml"))
	require.NoError(t, err)
	ctx := context.Background()
	// Three customers in January 2026: ana and bo sign up, ana orders.
	for _, stmt := range []string{
		`INSERT INTO customers (id, email, stage) VALUES ('ana', 'ana@example.com', 'conversion'), ('bo', 'bo@example.com', 'acquisition'), ('cy', '', 'reach')`,
		`INSERT INTO stage_transitions (customer_id, from_stage, to_stage, occurred_at) VALUES
			('ana', NULL, 'reach', '2026-01-02'), ('ana', 'reach', 'acquisition', '2026-01-03'), ('ana', 'acquisition', 'conversion', '2026-01-04'),
			('bo', NULL, 'reach', '2026-01-05'), ('bo', 'reach', 'acquisition', '2026-01-06'), ('cy', NULL, 'reach', '2026-01-07')`,
		`INSERT INTO events (customer_id, type, properties, occurred_at) VALUES ('ana', 'order_placed', '{"total": 12.5}', '2026-01-04'),
			('ana', 'nps_answered', '{"score": 10}', '2026-01-05'), ('bo', 'nps_answered', '{"score": 3}', '2026-01-06')`,
	} {
		_, err := db.Pool.Exec(ctx, stmt)
		require.NoError(t, err)
	}
	h := server.NewOps(&server.OpsConfig{Pool: db.Pool, Rules: rules.NewHolder(rs), APIToken: "tok",
		UIUser: "ops", UIPassword: "pw", API: http.NotFoundHandler()}).Handler()
	return &reportsBundle{db: db, h: h}
}

func (b *reportsBundle) get(t *testing.T, path string, auth func(*http.Request)) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if auth != nil {
		auth(req)
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func TestReports(t *testing.T) {
	t.Parallel()
	b := setupReports(t)
	const q = "?from=2026-01-01&to=2026-01-31"

	t.Run("LifecycleJSON", func(t *testing.T) {
		t.Parallel()
		code, body := b.get(t, "/v1/reports/lifecycle"+q, bearer("tok"))
		require.Equal(t, http.StatusOK, code, body)
		var l report.Lifecycle
		require.NoError(t, json.Unmarshal([]byte(body), &l))
		require.Equal(t, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), l.To)
		require.Equal(t, []report.StageCount{sc("reach", 1), sc("acquisition", 1), sc("conversion", 1), sc("retention", 0),
			sc("loyalty", 0), sc("at_risk", 0), sc("churned", 0)}, l.Funnel)
		require.Len(t, l.Periods, 1)
		jan := l.Periods[0]
		require.Equal(t, int64(3), jan.NewCustomers)
		require.Equal(t, int64(2), jan.Acquired)
		// One promoter, one detractor: NPS 0.
		require.Equal(t, int64(2), jan.NPS.Answers)
		require.InDelta(t, 0, *jan.NPS.Value, 1e-9)
	})
	t.Run("RulesJSON", func(t *testing.T) {
		t.Parallel()
		code, body := b.get(t, "/v1/reports/rules"+q, bearer("tok"))
		require.Equal(t, http.StatusOK, code, body)
		var r report.Rules
		require.NoError(t, json.Unmarshal([]byte(body), &r))
		require.Equal(t, "welcome", r.Rules[0].Rule, "the rule set's rules, in file order")
	})
	t.Run("NeedsToken", func(t *testing.T) {
		t.Parallel()
		code, _ := b.get(t, "/v1/reports/lifecycle", nil)
		require.Equal(t, http.StatusUnauthorized, code)
		code, _ = b.get(t, "/v1/reports/lifecycle", bearer("wrong"))
		require.Equal(t, http.StatusUnauthorized, code)
		code, _ = b.get(t, "/dashboard/", nil)
		require.Equal(t, http.StatusUnauthorized, code)
	})
	t.Run("BadInput", func(t *testing.T) {
		t.Parallel()
		code, body := b.get(t, "/v1/reports/lifecycle?period=year", bearer("tok"))
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, body, `period \"year\": use week, month or quarter`)
		code, body = b.get(t, "/v1/reports/lifecycle?from=01/02/2026", bearer("tok"))
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, body, "want a date as YYYY-MM-DD")
		code, body = b.get(t, "/v1/reports/funnels", bearer("tok"))
		require.Equal(t, http.StatusNotFound, code)
		require.Contains(t, body, "use /v1/reports/lifecycle or /v1/reports/rules")
	})
	t.Run("Dashboard", func(t *testing.T) {
		t.Parallel()
		code, body := b.get(t, "/dashboard/"+q, func(r *http.Request) { r.SetBasicAuth("ops", "pw") })
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `<tr data-stage="acquisition">`)
		require.Regexp(t, `data-stage="conversion">.*\n.*\n\s*<td class="n">1</td>`, body)
		require.Contains(t, body, "<svg")
		require.NotContains(t, body, "http://", "no external assets")
		code, body = b.get(t, "/dashboard/static/style.css", bearer("tok"))
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, ".funnel")
		code, body = b.get(t, "/dashboard/?period=decade", bearer("tok"))
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, body, "use week, month or quarter")
	})
	t.Run("CustomerPage", func(t *testing.T) {
		t.Parallel()
		code, body := b.get(t, "/dashboard/customers/ana", bearer("tok"))
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `<b id="stage">conversion</b>`)
		require.Contains(t, body, "type=order_placed")
		require.Equal(t, 3, strings.Count(body, `class="k-transition"`))
		code, body = b.get(t, "/dashboard/customers/nobody", bearer("tok"))
		require.Equal(t, http.StatusNotFound, code)
		require.Contains(t, body, `no customer &#34;nobody&#34;`)
	})
}

func sc(stage string, n int64) report.StageCount {
	return report.StageCount{Stage: stage, Customers: n}
}
