package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/worker"
)

// journeyRules is the abandoned-cart sketch of issue 16, as written.
const journeyRules = `version: 1
templates_dir: tpl
rules:
  - name: abandoned-cart
    on: checkout_started
    key: event.properties.checkout_id            # one run per checkout; default: one per customer
    exit: { on: order_placed, when: "event.properties.checkout_id == run.key" }
    actions:
      - wait: 1h
      - email: { template: cart_reminder }
      - wait_for: { event: cart_updated, within: 1d }   # continues early when it comes
      - if: "customer.orders_count == 0"
        then:
          - coupon: { percent: 5, expires_in: 3d }
          - email: { template: cart_last_chance }
  - name: promo
    schedule: "0 0 1 1 *"
    cooldown: 1h
    when: customer.orders_count == 0
    actions:
      - email: { template: cart_reminder }
`

type journeyBundle struct {
	db    *testdb.DB
	smtp  *smtptest.Server
	app   *app.App
	clock *testClock
	url   string
	dir   string
}

// setupJourney starts an app on journeyRules whose clock is a year ahead of
// the wall clock, so River keeps the waits' jobs scheduled until release
// moves them to the test clock's present.
func setupJourney(t *testing.T) *journeyBundle {
	t.Helper()
	b := &journeyBundle{db: testdb.New(t), smtp: smtptest.Start(t),
		clock: &testClock{t: time.Now().Add(365 * 24 * time.Hour).Truncate(time.Second)}, dir: t.TempDir()}
	require.NoError(t, os.Mkdir(filepath.Join(b.dir, "tpl"), 0o755))
	files := map[string]string{
		"rules.yaml":                       journeyRules,
		"tpl/cart_reminder.html":           `<p>Your cart misses you, {{.Customer.Name}}</p>`,
		"tpl/cart_reminder.txt":            `Your cart misses you, {{.Customer.Name}}`,
		"tpl/cart_reminder.subject.txt":    `Your cart`,
		"tpl/cart_last_chance.html":        `<p>Last chance</p>`,
		"tpl/cart_last_chance.txt":         `Last chance`,
		"tpl/cart_last_chance.subject.txt": `Last chance`,
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(b.dir, name), []byte(content), 0o644))
	}
	ctx := context.Background()
	a, err := app.New(ctx, app.Config{
		DatabaseURL: b.db.URL, RulesPath: filepath.Join(b.dir, "rules.yaml"), APIToken: token, Addr: "127.0.0.1:0",
		SMTPURL: b.smtp.URL, From: "Shop <shop@example.com>", UnsubscribeMailto: "unsubscribe@example.com",
		Migrate: true, Now: b.clock.Now, NoWatchRules: true,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Worker: worker.Config{Schema: b.db.Schema, RetryPolicy: fastRetry{}},
	})
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop(context.Background())) })
	b.app, b.url = a, "http://"+a.Addr()
	return b
}

func (b *journeyBundle) event(t *testing.T, customer, typ, checkout string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"customer_id": customer, "type": typ, "email": customer + "@example.com",
		"properties": map[string]any{"checkout_id": checkout}})
	status, resp := post(t, b.url, token, string(body))
	require.Equal(t, http.StatusAccepted, status, resp)
}

// advance moves the clock by d and makes the journey jobs due by then
// available to River now.
func (b *journeyBundle) advance(t *testing.T, d time.Duration) {
	t.Helper()
	b.clock.Set(b.clock.Now().Add(d))
	_, err := b.db.Pool.Exec(context.Background(), `UPDATE river_job SET scheduled_at = now()
		WHERE kind = 'ciclo.journey_step' AND state = 'scheduled' AND scheduled_at <= $1`, b.clock.Now())
	require.NoError(t, err)
}

// run is a customer's run as the test reads it.
type run struct {
	State, Reason string
	PC, Seq       int
}

func (b *journeyBundle) run(t *testing.T, customer string) run {
	t.Helper()
	var r run
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `SELECT state, COALESCE(exit_reason, ''), pc, seq
		FROM journey_runs WHERE customer_id = $1 ORDER BY id DESC LIMIT 1`, customer).Scan(&r.State, &r.Reason, &r.PC, &r.Seq))
	return r
}

func (b *journeyBundle) waitRun(t *testing.T, customer, state string, seq int) {
	t.Helper()
	waitFor(t, customer+" run "+state, func() bool {
		var n int
		_ = b.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM journey_runs
			WHERE customer_id = $1 AND state = $2 AND seq = $3`, customer, state, seq).Scan(&n)
		return n == 1
	})
}

func (b *journeyBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// sentTo counts the messages the SMTP server got per recipient and subject.
func sentTo(msgs []smtptest.Received) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[strings.Trim(m.Header.Get("To"), "<>")+" "+m.Header.Get("Subject")]++
	}
	return out
}

func TestJourney(t *testing.T) {
	t.Parallel()

	t.Run("AbandonedCart", func(t *testing.T) {
		b := setupJourney(t)
		for _, c := range []string{"c1", "c2", "c3"} {
			b.event(t, c, "checkout_started", "k-"+c)
		}
		for _, c := range []string{"c1", "c2", "c3"} {
			b.waitRun(t, c, "waiting", 1)
		}
		// c1 orders from another checkout: the run goes on; then from this one: it exits.
		b.event(t, "c1", "order_placed", "k-other")
		b.event(t, "c1", "order_placed", "k-c1")
		waitFor(t, "c1 exits", func() bool { return b.run(t, "c1").State == "exited" })
		require.Contains(t, b.run(t, "c1").Reason, "exit event order_placed")
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM journey_runs r JOIN events e ON e.customer_id = r.customer_id
			AND e.type = 'order_placed' AND e.properties->>'checkout_id' = 'k-other' AND e.evaluated_at IS NOT NULL
			WHERE r.customer_id = 'c1'`), "the other checkout's order was evaluated before the exit")

		b.advance(t, time.Hour+time.Second)
		b.waitRun(t, "c2", "waiting_event", 2)
		b.waitRun(t, "c3", "waiting_event", 2)
		msgs := b.smtp.WaitMessages(t, 2, 15*time.Second)
		require.Equal(t, map[string]int{"c2@example.com Your cart": 1, "c3@example.com Your cart": 1}, sentTo(msgs))

		// c2 updates its cart: goes on at once (no order: coupon and last chance).
		b.event(t, "c2", "cart_updated", "k-c2")
		waitFor(t, "c2 done", func() bool { return b.run(t, "c2").State == "done" })
		b.smtp.WaitMessages(t, 3, 15*time.Second)
		require.Equal(t, "waiting_event", b.run(t, "c3").State, "c3 still waits")

		// c3 does nothing: the timeout continues the run.
		b.advance(t, 24*time.Hour)
		waitFor(t, "c3 done", func() bool { return b.run(t, "c3").State == "done" })
		msgs = b.smtp.WaitMessages(t, 4, 15*time.Second)
		require.Equal(t, map[string]int{"c2@example.com Your cart": 1, "c3@example.com Your cart": 1,
			"c2@example.com Last chance": 1, "c3@example.com Last chance": 1}, sentTo(msgs))
		require.Equal(t, 0, b.count(t, `SELECT count(*) FROM coupons WHERE customer_id = 'c1'`))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM coupons WHERE customer_id = 'c2' AND kind = 'percent' AND value = 5`))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM coupons WHERE customer_id = 'c3' AND kind = 'percent' AND value = 5`))
		require.Equal(t, 0, b.count(t, `SELECT count(*) FROM deliveries WHERE customer_id = 'c1'`))

		// A step job run again (a retry after a crash, a duplicate): no step repeats.
		steps := b.count(t, `SELECT count(*) FROM journey_steps`)
		var argsJSON []byte
		rows, err := b.db.Pool.Query(context.Background(), `SELECT args FROM river_job WHERE kind = 'ciclo.journey_step'`)
		require.NoError(t, err)
		var again []river.InsertManyParams
		for rows.Next() {
			require.NoError(t, rows.Scan(&argsJSON))
			var a jobs.JourneyStepArgs
			require.NoError(t, json.Unmarshal(argsJSON, &a))
			again = append(again, river.InsertManyParams{Args: a})
		}
		require.NoError(t, rows.Err())
		require.NotEmpty(t, again)
		_, err = b.app.River.InsertMany(context.Background(), again)
		require.NoError(t, err)
		waitFor(t, "repeated jobs done", func() bool {
			return b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'ciclo.journey_step' AND state <> 'completed'`) == 0
		})
		require.Equal(t, steps, b.count(t, `SELECT count(*) FROM journey_steps`))
		require.Equal(t, 4, b.count(t, `SELECT count(*) FROM deliveries`))
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM coupons`))
		require.Len(t, b.smtp.Messages(), 4)
	})

	t.Run("ReloadMidRun", func(t *testing.T) {
		b := setupJourney(t)
		b.event(t, "c1", "checkout_started", "k1")
		b.event(t, "c2", "checkout_started", "k2")
		b.waitRun(t, "c1", "waiting", 1)
		b.waitRun(t, "c2", "waiting", 1)
		var v1 string
		require.NoError(t, b.db.Pool.QueryRow(context.Background(),
			`SELECT rule_set_version FROM journey_runs WHERE customer_id = 'c1'`).Scan(&v1))

		// v2 sends cart_last_chance first: running runs keep v1's steps, new runs take v2's.
		v2 := strings.Replace(journeyRules, "- email: { template: cart_reminder }", "- email: { template: cart_last_chance }", 1)
		replaceFile(t, filepath.Join(b.dir, "rules.yaml"), v2)
		require.NoError(t, b.app.Reload(context.Background()))
		b.event(t, "c3", "checkout_started", "k3")
		b.waitRun(t, "c3", "waiting", 1)
		b.advance(t, time.Hour+time.Second)
		msgs := b.smtp.WaitMessages(t, 3, 15*time.Second)
		require.Equal(t, map[string]int{"c1@example.com Your cart": 1, "c2@example.com Your cart": 1,
			"c3@example.com Last chance": 1}, sentTo(msgs))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM journey_runs WHERE customer_id = 'c3' AND rule_set_version <> $1`, v1))

		// v3 removes the rule: waiting runs stop at their next step and say why.
		v3 := strings.Replace(journeyRules, "name: abandoned-cart", "name: other-cart", 1)
		replaceFile(t, filepath.Join(b.dir, "rules.yaml"), v3)
		require.NoError(t, b.app.Reload(context.Background()))
		b.advance(t, 25*time.Hour)
		for _, c := range []string{"c1", "c2", "c3"} {
			waitFor(t, c+" stopped", func() bool { return b.run(t, c).State == "stopped" })
			require.Equal(t, "rule removed from the rules file", b.run(t, c).Reason)
		}
		require.Len(t, b.smtp.Messages(), 3)

		// The timeline says so.
		entries, err := store.New(b.db.Pool).Timeline(context.Background(), "c1", 100)
		require.NoError(t, err)
		var ended string
		for _, e := range entries {
			if e.Kind == store.TimelineRunEnded {
				ended = fmt.Sprint(e.Detail["state"], ": ", e.Detail["reason"])
			}
		}
		require.Equal(t, "stopped: rule removed from the rules file", ended)
	})

	t.Run("CampaignOnDemand", func(t *testing.T) {
		b := setupJourney(t)
		for _, body := range []string{`{"customer_id":"c1","type":"signed_up","email":"c1@example.com"}`,
			`{"customer_id":"c2","type":"signed_up","email":"c2@example.com"}`, `{"customer_id":"c3","type":"signed_up"}`} {
			status, resp := post(t, b.url, token, body)
			require.Equal(t, http.StatusAccepted, status, resp)
		}
		waitFor(t, "customers", func() bool { return b.count(t, `SELECT count(*) FROM customers`) == 3 })

		runRule := func(path string) (int, map[string]any) {
			req, err := http.NewRequest(http.MethodPost, b.url+path, nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var out map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
			return resp.StatusCode, out
		}
		status, rep := runRule("/v1/rules/promo/run?dry_run=true")
		require.Equal(t, http.StatusOK, status, rep)
		require.Equal(t, map[string]any{"customers": 3.0, "matched": 3.0, "held_out": 0.0, "would_act": 3.0, "suppressed": 1.0, "capped": 0.0},
			map[string]any{"customers": rep["customers"], "matched": rep["matched"], "held_out": rep["held_out"],
				"would_act": rep["would_act"], "suppressed": rep["suppressed"], "capped": rep["capped"]})
		require.Len(t, rep["sample"], 3)
		require.Equal(t, 0, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'ciclo.sweep'`), "a dry run queues nothing")

		status, first := runRule("/v1/rules/promo/run")
		require.Equal(t, http.StatusAccepted, status, first)
		require.Equal(t, false, first["duplicate"])
		status, second := runRule("/v1/rules/promo/run") // a double click
		require.Equal(t, http.StatusAccepted, status, second)
		require.Equal(t, true, second["duplicate"])
		require.Equal(t, first["job_id"], second["job_id"])
		msgs := b.smtp.WaitMessages(t, 2, 15*time.Second)
		require.Equal(t, map[string]int{"c1@example.com Your cart": 1, "c2@example.com Your cart": 1}, sentTo(msgs))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'ciclo.sweep'`))

		status, out := runRule("/v1/rules/abandoned-cart/run")
		require.Equal(t, http.StatusConflict, status, out)
		status, out = runRule("/v1/rules/nope/run")
		require.Equal(t, http.StatusNotFound, status, out)
	})

	t.Run("RunsListed", func(t *testing.T) {
		b := setupJourney(t)
		b.event(t, "c1", "checkout_started", "k1")
		b.waitRun(t, "c1", "waiting", 1)
		runs, err := store.New(b.db.Pool).CustomerJourneyRuns(context.Background(), "c1", 10)
		require.NoError(t, err)
		require.Len(t, runs, 1)
		require.Equal(t, "wait 1h0m0s", runs[0].Step)
		require.Equal(t, "k1", runs[0].Key)
		require.WithinDuration(t, b.clock.Now().Add(time.Hour), runs[0].NextStepAt, time.Second)
		// A second checkout_started for the same checkout does not start a second run; another checkout does.
		b.event(t, "c1", "checkout_started", "k1")
		b.event(t, "c1", "checkout_started", "k2")
		waitFor(t, "second run", func() bool {
			return b.count(t, `SELECT count(*) FROM journey_runs WHERE customer_id = 'c1'`) == 2 &&
				b.count(t, `SELECT count(*) FROM events WHERE customer_id = 'c1' AND evaluated_at IS NULL`) == 0
		})
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM journey_runs WHERE customer_id = 'c1' AND key = 'k1'`))
	})
}
