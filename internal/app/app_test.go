package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/examplerules"
	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/worker"
)

const token = "test-token"

type testBundle struct {
	db   *testdb.DB
	smtp *smtptest.Server
	app  *app.App
	url  string
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	return setupRole(t, app.RoleAll)
}

// setupRole starts an app of the given role on a fresh schema, with
// rules.example.yaml's quiet hours moved away from the clock (examplerules)
// so its email goes out at any hour.
func setupRole(t testing.TB, role string) *testBundle {
	t.Helper()
	db := testdb.New(t)
	smtp := smtptest.Start(t)
	ctx := context.Background()
	a, err := app.New(ctx, app.Config{
		DatabaseURL: db.URL,
		RulesPath:   examplerules.Path(t), // quiet hours away from the clock
		APIToken:    token,
		Addr:        "127.0.0.1:0",
		SMTPURL:     smtp.URL,
		From:        "Shop <shop@example.com>",
		Migrate:     true,
		Role:        role,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Worker:      worker.Config{Schema: db.Schema},
		UIUser:      "ops",
		UIPassword:  "ops-password",
	})
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop(context.Background())) })
	return &testBundle{db: db, smtp: smtp, app: a, url: "http://" + a.Addr()}
}

func post(t testing.TB, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/events", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// waitJobs waits until no job of the schema is pending or running.
func waitJobs(t testing.TB, db *testdb.DB) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if db.Count(t, "river_job", "state IN ('available','running','retryable','scheduled','pending')") == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("jobs still pending after 15s")
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()

	t.Run("FirstOrderFiresOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// No pool_max_conns in the URL: the pool is sized for the workers.
		require.EqualValues(t, 10+worker.GuardedSendsMax+worker.EvaluateWorkersDefault+worker.SweepWorkersDefault, b.app.Pool.Config().MaxConns)
		event := `{"customer_id":"c-1","type":"order_placed","idempotency_key":"order-1001",
			"email":"ana@example.com","name":"Ana","properties":{"total":42.5}}`
		status, body := post(t, b.url, token, event)
		require.Equal(t, http.StatusAccepted, status, body)
		var first struct {
			Events []struct {
				ID        int64 `json:"id"`
				Duplicate bool  `json:"duplicate"`
			} `json:"events"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &first))
		require.Len(t, first.Events, 1)
		require.False(t, first.Events[0].Duplicate)

		msgs := b.smtp.WaitMessages(t, 1, 15*time.Second)
		waitJobs(t, b.db)

		var code string
		var expires, created time.Time
		require.NoError(t, b.db.Pool.QueryRow(context.Background(),
			`SELECT code, expires_at, created_at FROM coupons WHERE customer_id = 'c-1' AND rule = 'first-order-bonus'`).Scan(&code, &expires, &created))
		require.WithinDuration(t, created.Add(14*24*time.Hour), expires, time.Second)
		require.WithinDuration(t, time.Now().Add(14*24*time.Hour), expires, time.Minute)

		require.Equal(t, 1, b.db.Count(t, "stage_transitions",
			"customer_id = 'c-1' AND to_stage = 'conversion' AND from_stage = 'reach' AND rule = 'first-order-bonus' AND rule_set_version = $1",
			b.app.Rules.Load().Version))
		require.Contains(t, msgs[0].Text, code)
		require.Contains(t, msgs[0].HTML, code)
		require.Equal(t, []string{"ana@example.com"}, msgs[0].To)
		require.NotEmpty(t, msgs[0].Header.Get("List-Unsubscribe"))
		require.Equal(t, 1, b.db.Count(t, "deliveries", "customer_id = 'c-1' AND status = 'sent' AND provider_id <> ''"))

		// The same event again: same answer, no effect.
		status, body = post(t, b.url, token, event)
		require.Equal(t, http.StatusAccepted, status, body)
		require.Contains(t, body, `"duplicate":true`)
		require.Contains(t, body, `"id":`+jsonInt(first.Events[0].ID))

		// River retries the evaluate job (at-least-once): still one of each.
		_, err := b.app.River.Insert(context.Background(), jobs.EvaluateArgs{CustomerID: "c-1", EventID: first.Events[0].ID}, nil)
		require.NoError(t, err)
		waitJobs(t, b.db)

		// The example rules' points rules add points_granted events and their firings.
		require.Equal(t, 1, b.db.Count(t, "events", "customer_id = 'c-1' AND type NOT LIKE 'points_%'"))
		require.Equal(t, 1, b.db.Count(t, "rule_firings", "customer_id = 'c-1' AND rule NOT LIKE '%points%'"))
		require.Equal(t, 1, b.db.Count(t, "points_lots", "customer_id = 'c-1' AND rule = 'first-order-points'"))
		require.Equal(t, 1, b.db.Count(t, "coupons", "customer_id = 'c-1'"))
		require.Equal(t, 1, b.db.Count(t, "stage_transitions", "customer_id = 'c-1' AND rule IS NOT NULL"))
		require.Equal(t, 1, b.db.Count(t, "deliveries", "customer_id = 'c-1'"))
		require.Len(t, b.smtp.Messages(), 1)
		require.Equal(t, 1, b.db.Count(t, "customers", "id = 'c-1' AND orders_count = 1 AND total_spent_cents = 4250 AND stage = 'conversion'"))
	})

	t.Run("BadInputChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		big := `{"customer_id":"c-2","type":"order_placed","properties":{"pad":"` + strings.Repeat("x", 2<<20) + `"}}`
		tests := []struct {
			name       string
			auth, body string
			wantStatus int
			wantMsg    string
		}{
			{"MalformedJSON", token, `{"customer_id": "c-2", "type": }`, 400, "malformed JSON at line 1"},
			{"UnknownField", token, `{"customer_id":"c-2","type":"order_placed","colour":"red"}`, 400, `unknown field \"colour\"`},
			{"MissingCustomerID", token, `{"type":"order_placed"}`, 422, "customer_id: required"},
			{"MissingType", token, `{"customer_id":"c-2"}`, 422, "type: required"},
			{"BadTypeInBatch", token, `[{"customer_id":"c-2","type":"ok"},{"customer_id":"c-2","type":"Bad Type"}]`, 422, "[1].type"},
			{"WrongFieldType", token, `{"customer_id":7,"type":"order_placed"}`, 400, `field \"customer_id\" must be a string`},
			{"BadEmail", token, `{"customer_id":"c-2","type":"signed_up","email":"nope"}`, 422, "not a valid email address"},
			{"OversizeBody", token, big, 413, "larger than"},
			{"WrongToken", "nope", `{"customer_id":"c-2","type":"order_placed"}`, 401, "wrong bearer token"},
			{"NoToken", "", `{"customer_id":"c-2","type":"order_placed"}`, 401, "missing bearer token"},
			{"EmptyBatch", token, `[]`, 400, "empty batch"},
			{"FutureTime", token, `{"customer_id":"c-2","type":"order_placed","occurred_at":"9999-01-01T00:00:00Z"}`, 422, "occurred_at: 9999-01-01T00:00:00Z is in the future"},
			{"AncientTime", token, `{"customer_id":"c-2","type":"order_placed","occurred_at":"0001-01-01T00:00:00Z"}`, 422, "occurred_at: 0001-01-01T00:00:00Z is before 2000-01-01"},
			{"HugeTotal", token, `{"customer_id":"c-2","type":"order_placed","properties":{"total":1e300}}`, 422, "properties.total: must be a number from 0 to"},
			{"TrailingData", token, `{"customer_id":"c-2","type":"a"} {}`, 400, "unexpected data"},
		}
		for _, tt := range tests {
			status, body := post(t, b.url, tt.auth, tt.body)
			require.Equal(t, tt.wantStatus, status, "%s: %s", tt.name, body)
			require.Contains(t, body, tt.wantMsg, tt.name)
		}
		for _, table := range []string{"customers", "events", "rule_firings"} {
			require.Equal(t, 0, b.db.Count(t, table, ""), table)
		}
		require.Equal(t, 0, b.db.Count(t, "river_job", ingestJobs), "evaluate jobs")
	})

	t.Run("BatchIsAtomicAndOrdered", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, body := post(t, b.url, token, `[
			{"customer_id":"c-3","type":"signed_up","email":"bo@example.com","idempotency_key":"s-3"},
			{"customer_id":"c-3","type":"order_placed","idempotency_key":"o-3","properties":{"total":10}},
			{"customer_id":"c-3","type":"order_placed","idempotency_key":"o-4","properties":{"total":5}}
		]`)
		require.Equal(t, http.StatusAccepted, status, body)
		b.smtp.WaitMessages(t, 3, 15*time.Second) // welcome, first order bonus, repeat purchase
		waitJobs(t, b.db)
		require.Equal(t, 3, b.db.Count(t, "events", "customer_id = 'c-3' AND type NOT LIKE 'points_%'"))
		require.Equal(t, 1, b.db.Count(t, "customers", "id = 'c-3' AND orders_count = 2 AND total_spent_cents = 1500"))
		// Each event's rules saw the customer as of that event: the first order fired the bonus.
		require.Equal(t, 1, b.db.Count(t, "rule_firings", "customer_id = 'c-3' AND rule = 'first-order-bonus'"))
		require.Equal(t, 1, b.db.Count(t, "rule_firings", "customer_id = 'c-3' AND rule = 'repeat-purchase'"))
	})
}

func jsonInt(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var (
	_ = bytes.NewReader
	_ = os.Getenv
	_ = pgx.Identifier{}
	_ river.InsertOpts
	_ rivertype.JobState
)
