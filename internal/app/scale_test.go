package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/examplerules"
	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/worker"
)

// startRole runs one ciclo process of role against db, with a pool of its own.
func startRole(t *testing.T, db *testdb.DB, smtp *smtptest.Server, role, id string) *app.App {
	t.Helper()
	ctx := context.Background()
	a, err := app.New(ctx, app.Config{
		// Each process gets its own pool, sized for its workers.
		DatabaseURL: db.URL + "&pool_max_conns=25",
		RulesPath:   examplerules.Path(t), // quiet hours away from the clock
		APIToken:    token,
		Addr:        "127.0.0.1:0",
		SMTPURL:     smtp.URL,
		From:        "Shop <shop@example.com>",
		Role:        role,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Worker:      worker.Config{Schema: db.Schema, ID: id},
	})
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop(context.Background())) })
	return a
}

func TestRoles(t *testing.T) {
	t.Parallel()

	t.Run("TwoWorkersAndAnAPIShareTheWork", func(t *testing.T) {
		t.Parallel()
		const numEvents, batch = 1000, 250
		db := testdb.New(t)
		smtp := smtptest.Start(t)
		w1 := startRole(t, db, smtp, app.RoleWorker, "worker-1")
		startRole(t, db, smtp, app.RoleWorker, "worker-2")
		api := startRole(t, db, smtp, app.RoleAPI, "api-1")

		// A worker process serves health and metrics only.
		workerURL := "http://" + w1.Addr()
		status, _, _ := get(t, workerURL+"/readyz")
		require.Equal(t, http.StatusOK, status)
		status, _ = post(t, workerURL, token, `{"customer_id":"x","type":"signed_up"}`)
		require.Equal(t, http.StatusNotFound, status)
		status, _, _ = get(t, workerURL+"/riverui/", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusNotFound, status)

		start := time.Now()
		for from := 0; from < numEvents; from += batch {
			events := make([]string, 0, batch)
			for i := from; i < from+batch; i++ {
				events = append(events, fmt.Sprintf(`{"customer_id":"s-%d","type":"order_placed","idempotency_key":"o-%d",`+
					`"email":"s%d@example.com","properties":{"total":20}}`, i, i, i))
			}
			status, body := post(t, "http://"+api.Addr(), token, "["+strings.Join(events, ",")+"]")
			require.Equal(t, http.StatusAccepted, status, body)
		}
		msgs := smtp.WaitMessages(t, numEvents, 60*time.Second)
		waitJobs(t, db)
		t.Logf("%d events → %d emails in %s", numEvents, len(msgs), time.Since(start))

		// Exactly one firing, coupon and email per customer.
		require.Equal(t, numEvents, db.Count(t, "rule_firings", "rule = 'first-order-bonus'"))
		require.Equal(t, numEvents, db.Count(t, "rule_firings", "rule NOT LIKE '%points%'"))
		require.Equal(t, numEvents, db.Count(t, "coupons", ""))
		require.Equal(t, numEvents, db.Count(t, "deliveries", "status = 'sent'"))
		require.Equal(t, numEvents, db.Count(t, "deliveries", ""))
		require.Len(t, smtp.Messages(), numEvents)
		seen := map[string]bool{}
		for _, m := range smtp.Messages() {
			require.Len(t, m.To, 1)
			require.False(t, seen[m.To[0]], "second email to %s", m.To[0])
			seen[m.To[0]] = true
		}

		// Both workers worked jobs; the API process none.
		rows, err := db.Pool.Query(context.Background(),
			`SELECT attempted_by[array_length(attempted_by, 1)], count(*) FROM river_job WHERE state = 'completed' AND kind IN ('ciclo.evaluate', 'ciclo.dispatch') GROUP BY 1`)
		require.NoError(t, err)
		perClient := map[string]int{}
		for rows.Next() {
			var id string
			var n int
			require.NoError(t, rows.Scan(&id, &n))
			perClient[id] = n
		}
		require.NoError(t, rows.Err())
		t.Logf("jobs per client: %v", perClient)
		require.Len(t, perClient, 2)
		require.Positive(t, perClient["worker-1"])
		require.Positive(t, perClient["worker-2"])
		// The example rules grant points twice per first order (bonus and
		// points per order): each points_granted event is evaluated too.
		require.Equal(t, 4*numEvents, perClient["worker-1"]+perClient["worker-2"], "per event: its evaluation, a dispatch, two points_granted evaluations")
	})
}
