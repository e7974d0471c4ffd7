package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/metrics"
)

func TestMetrics(t *testing.T) {
	t.Parallel()

	t.Run("NilIsSafe", func(t *testing.T) {
		t.Parallel()
		var m *metrics.Metrics
		m.EventIngested("x")
		m.Delivery("email", "sent")
		m.ObserveDeliveryLatency("email", time.Second)
		m.ObserveSweep("r", time.Second)
		m.JobError("k")
		m.Known(metrics.Labels{Rules: []string{"r"}})
		m.RulesLoaded(false)
		j := m.NewJob()
		require.Nil(t, j)
		ctx := metrics.WithJob(context.Background(), j)
		rec := metrics.FromContext(ctx)
		rec.RuleEvaluated("r", true, nil)
		rec.RuleFired("r")
		rec.StageTransition("a", "b")
		rec.ObserveSweep("r", time.Second)
		rec.Flush()
		rec.Discard()
	})

	t.Run("JobCountsOnlyOnFlush", func(t *testing.T) {
		t.Parallel()
		m := metrics.New(nil)
		failed := m.NewJob()
		failed.RuleFired("r")
		failed.Discard()
		ok := metrics.FromContext(metrics.WithJob(context.Background(), m.NewJob()))
		ok.RuleFired("r")
		ok.RuleEvaluated("r", false, errors.New("boom"))
		ok.StageTransition("", "reach")
		require.Equal(t, 0.0, count(t, m, "ciclo_rule_firings_total"))
		ok.Flush()
		require.Equal(t, 1.0, count(t, m, "ciclo_rule_firings_total"))
		require.Equal(t, 1.0, count(t, m, "ciclo_rule_evaluations_total"))
		require.Equal(t, 1.0, count(t, m, "ciclo_stage_transitions_total"))
	})

	t.Run("KnownLabelsExportedAtZero", func(t *testing.T) {
		t.Parallel()
		m := metrics.New(&metrics.Config{QueueDepth: func(context.Context) ([]metrics.QueueCount, error) {
			return []metrics.QueueCount{{Queue: "email", State: "available", Count: 3}}, nil
		}})
		m.Known(metrics.Labels{EventTypes: []string{"signed_up"}, EventRules: []string{"welcome"}, Rules: []string{"welcome"},
			Transitions: [][2]string{{"reach", "acquisition"}}, Channels: []string{"email"}, DeliveryStatuses: []string{"sent"},
			JobKinds: []string{"ciclo.evaluate"}, Queues: []string{"email"}, JobStates: []string{"available", "retryable"}})
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		for _, line := range []string{
			`ciclo_events_ingested_total{type="signed_up"} 0`,
			`ciclo_rule_evaluations_total{result="error",rule="welcome"} 0`,
			`ciclo_rule_errors_total{rule="welcome"} 0`,
			`ciclo_rule_firings_total{rule="welcome"} 0`,
			`ciclo_stage_transitions_total{from="reach",to="acquisition"} 0`,
			`ciclo_deliveries_total{channel="email",status="sent"} 0`,
			`ciclo_delivery_latency_seconds_count{channel="email"} 0`,
			`ciclo_job_errors_total{kind="ciclo.evaluate"} 0`,
			`ciclo_river_jobs{queue="email",state="available"} 3`,
			`ciclo_river_jobs{queue="email",state="retryable"} 0`,
			`ciclo_rules_reload_errors_total 0`,
			`ciclo_rules_last_reload_ok 1`,
		} {
			require.Contains(t, rec.Body.String(), line+"\n")
		}
		m.RulesLoaded(false)
		rec = httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		require.Contains(t, rec.Body.String(), "ciclo_rules_reload_errors_total 1\n")
		require.Contains(t, rec.Body.String(), "ciclo_rules_last_reload_ok 0\n")
	})

	t.Run("QueueDepthFailureKeepsOtherSeries", func(t *testing.T) {
		t.Parallel()
		m := metrics.New(&metrics.Config{QueueDepth: func(ctx context.Context) ([]metrics.QueueCount, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}, QueueDepthTimeout: 10 * time.Millisecond})
		m.EventIngested("signed_up")
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		require.Equal(t, http.StatusOK, rec.Code)
		require.Contains(t, rec.Body.String(), `ciclo_events_ingested_total{type="signed_up"} 1`)
		require.NotContains(t, rec.Body.String(), "ciclo_river_jobs{")
	})
}

// count sums the samples of one counter family.
func count(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, s := range mf.GetMetric() {
				sum += s.GetCounter().GetValue()
			}
		}
	}
	return sum
}
