package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/jobs"
)

// get sends a GET with optional headers and returns status, headers and body.
func get(t *testing.T, url string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// metricValue returns the value of the sample named series (name and
// labels exactly as exposed, labels sorted by name), or -1 when absent.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			require.NoError(t, err)
			return v
		}
	}
	return -1
}

func TestOps(t *testing.T) {
	t.Parallel()

	t.Run("HealthAndReadyNeedNoAuth", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, hdr, body := get(t, b.url+"/healthz", "X-Request-Id", "probe-1")
		require.Equal(t, http.StatusOK, status, body)
		require.Equal(t, "probe-1", hdr.Get("X-Request-Id"))

		status, hdr, body = get(t, b.url+"/readyz")
		require.Equal(t, http.StatusOK, status, body)
		require.Len(t, hdr.Get("X-Request-Id"), 24, "a new request id when none is sent")
		var ready struct {
			Status       string            `json:"status"`
			RulesVersion string            `json:"rules_version"`
			Checks       map[string]string `json:"checks"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &ready))
		require.Equal(t, "ready", ready.Status)
		require.Equal(t, b.app.Rules.Load().Version, ready.RulesVersion)
		require.Equal(t, map[string]string{"database": "ok", "migrations": "ok", "rules": "ok", "smtp": "ok"}, ready.Checks)
	})

	t.Run("MetricsMoveAfterAnEvent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, hdr, _ := get(t, b.url+"/metrics")
		require.Equal(t, http.StatusUnauthorized, status)
		require.Contains(t, hdr.Get("WWW-Authenticate"), "Bearer")
		status, _, before := get(t, b.url+"/metrics", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, 0.0, metricValue(t, before, `ciclo_events_ingested_total{type="order_placed"}`))

		status, body := post(t, b.url, token, `{"customer_id":"m-1","type":"order_placed","email":"m1@example.com","properties":{"total":10}}`)
		require.Equal(t, http.StatusAccepted, status, body)
		b.smtp.WaitMessages(t, 1, 15*time.Second)
		waitJobs(t, b.db)
		// A job that fails (its customer does not exist) and one waiting.
		ctx := context.Background()
		_, err := b.app.River.Insert(ctx, jobs.EvaluateArgs{CustomerID: "nobody", EventID: 1}, nil)
		require.NoError(t, err)
		waitJobs(t, b.db)
		_, err = b.app.River.Insert(ctx, jobs.EvaluateArgs{CustomerID: "later", EventID: 2}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)

		_, _, after := get(t, b.url+"/metrics", "Authorization", "Bearer "+token)
		for series, want := range map[string]float64{
			`ciclo_events_ingested_total{type="order_placed"}`:                       1,
			`ciclo_rule_evaluations_total{result="match",rule="first-order-bonus"}`:  1,
			`ciclo_rule_evaluations_total{result="no_match",rule="repeat-purchase"}`: 1,
			`ciclo_rule_firings_total{rule="first-order-bonus"}`:                     1,
			`ciclo_stage_transitions_total{from="reach",to="conversion"}`:            1,
			`ciclo_deliveries_total{channel="email",status="sent"}`:                  1,
			`ciclo_delivery_latency_seconds_count{channel="email"}`:                  1,
			`ciclo_job_errors_total{kind="ciclo.evaluate"}`:                          1,
			`ciclo_river_jobs{queue="evaluate",state="scheduled"}`:                   1,
			`ciclo_river_jobs{queue="evaluate",state="cancelled"}`:                   1,
		} {
			require.Equal(t, want, metricValue(t, after, series), series)
		}
		latency := metricValue(t, after, `ciclo_delivery_latency_seconds_sum{channel="email"}`)
		require.Greater(t, latency, 0.0)
		require.Less(t, latency, 15.0)
		// Sweeps report through the job's recorder; the histogram appears
		// once one has run.
		b.app.Metrics.ObserveSweep("win-back", 1500*time.Millisecond)
		_, _, after = get(t, b.url+"/metrics", "Authorization", "Bearer "+token)
		require.Equal(t, 1.0, metricValue(t, after, `ciclo_sweep_duration_seconds_count{rule="win-back"}`))
	})

	t.Run("MetricsExportedFromStart", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Scraped right after start, before any event: every series a
		// dashboard or rate() needs is there, at zero.
		status, _, body := get(t, b.url+"/metrics", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusOK, status)
		for series, want := range map[string]float64{
			`ciclo_events_ingested_total{type="order_placed"}`:                      0,
			`ciclo_events_ingested_total{type="nps_answered"}`:                      0,
			`ciclo_rule_evaluations_total{result="match",rule="first-order-bonus"}`: 0,
			`ciclo_rule_evaluations_total{result="error",rule="loyalty-promoter"}`:  0,
			`ciclo_rule_errors_total{rule="loyalty-promoter"}`:                      0,
			`ciclo_rule_firings_total{rule="win-back"}`:                             0,
			`ciclo_stage_transitions_total{from="reach",to="conversion"}`:           0,
			`ciclo_stage_transitions_total{from="at_risk",to="churned"}`:            0,
			`ciclo_deliveries_total{channel="email",status="sent"}`:                 0,
			`ciclo_deliveries_total{channel="webhook",status="failed"}`:             0,
			`ciclo_delivery_latency_seconds_count{channel="email"}`:                 0,
			`ciclo_sweep_duration_seconds_count{rule="win-back"}`:                   0,
			`ciclo_job_errors_total{kind="ciclo.dispatch"}`:                         0,
			`ciclo_river_jobs{queue="email",state="available"}`:                     0,
			`ciclo_river_jobs{queue="evaluate",state="retryable"}`:                  0,
			`ciclo_rules_reload_errors_total`:                                       0,
			`ciclo_rules_last_reload_ok`:                                            1,
		} {
			require.Equal(t, want, metricValue(t, body, series), series)
		}
	})

	t.Run("RiverUINeedsAuth", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, hdr, _ := get(t, b.url+"/riverui/")
		require.Equal(t, http.StatusUnauthorized, status)
		require.Contains(t, hdr.Get("WWW-Authenticate"), "Basic")
		status, _, _ = get(t, b.url+"/riverui/", "Authorization", "Bearer wrong")
		require.Equal(t, http.StatusUnauthorized, status)

		status, hdr, body := get(t, b.url+"/riverui/", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusOK, status, body)
		require.Contains(t, hdr.Get("Content-Type"), "text/html")

		req, err := http.NewRequest(http.MethodGet, b.url+"/riverui/api/jobs?state=available", nil)
		require.NoError(t, err)
		req.SetBasicAuth("ops", "ops-password")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		apiBody, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, string(apiBody))
		require.Contains(t, string(apiBody), `"data"`)

		req.SetBasicAuth("ops", "wrong")
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}
