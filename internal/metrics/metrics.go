// Package metrics holds ciclo's Prometheus metrics on a registry of its own
// (never the global one, so several processes' worth can live in one test
// binary) and serves them for /metrics.
//
// Every method is safe on a nil *Metrics and does nothing then, so the
// packages that record (server, worker) take an optional *Metrics and need
// no checks. Work done inside a River job is recorded through the job's
// context (FromContext) and only counted once the job completes, so a job
// that fails and is retried is not counted twice.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "ciclo"

// QueueDepthTimeoutDefault bounds the queue-depth query run at each scrape.
const QueueDepthTimeoutDefault = 2 * time.Second

// QueueCount is the number of River jobs in one queue and state.
type QueueCount struct {
	Queue string
	State string
	Count int64
}

// QueueCounter reads job counts by queue and state; the queue-depth
// collector calls it at scrape time.
type QueueCounter func(ctx context.Context) ([]QueueCount, error)

// Config configures Metrics. The zero value is usable.
type Config struct {
	// QueueDepth, optional, reads River's job counts at scrape time for
	// ciclo_river_jobs. Nil: the series is not exported.
	QueueDepth QueueCounter
	// QueueDepthTimeout bounds QueueDepth. Default QueueDepthTimeoutDefault.
	QueueDepthTimeout time.Duration
	// Logger receives scrape errors. Default slog.Default().
	Logger *slog.Logger
}

// Metrics is ciclo's set of metrics and the registry that holds them.
type Metrics struct {
	registry *prometheus.Registry
	logger   *slog.Logger

	eventsIngested   *prometheus.CounterVec
	ruleEvaluations  *prometheus.CounterVec
	ruleFirings      *prometheus.CounterVec
	stageTransitions *prometheus.CounterVec
	deliveries       *prometheus.CounterVec
	deliveryLatency  *prometheus.HistogramVec
	sweepDuration    *prometheus.HistogramVec
	jobErrors        *prometheus.CounterVec
}

// New returns Metrics registered on a fresh registry, together with the Go
// runtime and process collectors.
func New(cfg *Config) *Metrics {
	if cfg == nil {
		cfg = &Config{}
	}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		logger:   cfg.Logger,
		eventsIngested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "events_ingested_total",
			Help: "Events stored through the API, by event type (duplicates are not counted).",
		}, []string{"type"}),
		ruleEvaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "rule_evaluations_total",
			Help: "Rule conditions evaluated, by rule and result (match, no_match, error).",
		}, []string{"rule", "result"}),
		ruleFirings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "rule_firings_total",
			Help: "Rules fired (a new rule_firings row), by rule.",
		}, []string{"rule"}),
		stageTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "stage_transitions_total",
			Help: "Customers moved between lifecycle stages by rules, by from and to stage.",
		}, []string{"from", "to"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "deliveries_total",
			Help: "Dispatch attempts by channel and resulting status (sent, suppressed, failed, retry, …).",
		}, []string{"channel", "status"}),
		deliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "delivery_latency_seconds",
			Help:    "Time from the event being received (or the scheduled rule firing) to the message being handed to the SMTP server or webhook, by channel.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}, []string{"channel"}),
		sweepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "sweep_duration_seconds",
			Help:    "Duration of scheduled-rule sweep shards (a sweep runs as one or more shards), by rule.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"rule"}),
		jobErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "job_errors_total",
			Help: "River jobs whose work returned an error or panicked (cancelled jobs included), by job kind.",
		}, []string{"kind"}),
	}
	if m.logger == nil {
		m.logger = slog.Default()
	}
	m.registry.MustRegister(m.eventsIngested, m.ruleEvaluations, m.ruleFirings, m.stageTransitions,
		m.deliveries, m.deliveryLatency, m.sweepDuration, m.jobErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.QueueDepth != nil {
		timeout := cfg.QueueDepthTimeout
		if timeout <= 0 {
			timeout = QueueDepthTimeoutDefault
		}
		m.registry.MustRegister(&queueDepthCollector{read: cfg.QueueDepth, timeout: timeout, logger: m.logger})
	}
	return m
}

// Registry is where the metrics are registered, for tests and for adding
// collectors. Nil on a nil *Metrics.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.registry
}

// Handler serves the metrics in the Prometheus text format. On a nil
// *Metrics it answers 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog: slogErrorLog{m.logger},
		// A failed queue-depth query must not hide the other series.
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// EventIngested counts one stored (not duplicate) event of type typ.
func (m *Metrics) EventIngested(typ string) {
	if m == nil {
		return
	}
	m.eventsIngested.WithLabelValues(typ).Inc()
}

// ObserveSweep records that a sweep of rule took d. Sweeps call it directly
// (or through FromContext(ctx).ObserveSweep) when a sweep ends.
func (m *Metrics) ObserveSweep(rule string, d time.Duration) {
	if m == nil {
		return
	}
	m.sweepDuration.WithLabelValues(rule).Observe(d.Seconds())
}

// Delivery counts one dispatch attempt of channel ending in status.
func (m *Metrics) Delivery(channel, status string) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(channel, status).Inc()
}

// ObserveDeliveryLatency records the time from event (or firing) to hand-off.
func (m *Metrics) ObserveDeliveryLatency(channel string, d time.Duration) {
	if m == nil {
		return
	}
	m.deliveryLatency.WithLabelValues(channel).Observe(d.Seconds())
}

// JobError counts one failed work attempt of a job of kind.
func (m *Metrics) JobError(kind string) {
	if m == nil {
		return
	}
	m.jobErrors.WithLabelValues(kind).Inc()
}

// queueDepthCollector exports ciclo_river_jobs by querying River's job
// table at scrape time, so the numbers are current and no process has to
// poll in between.
type queueDepthCollector struct {
	read    QueueCounter
	timeout time.Duration
	logger  *slog.Logger
}

var queueDepthDesc = prometheus.NewDesc(Namespace+"_river_jobs",
	"River jobs by queue and state (completed jobs are not counted), read at scrape time.",
	[]string{"queue", "state"}, nil)

func (c *queueDepthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueDepthDesc }

func (c *queueDepthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.read(ctx)
	if err != nil {
		// Report the failure in the scrape and keep the other series.
		c.logger.Warn("metrics: read queue depth failed", slog.String("error", err.Error()))
		ch <- prometheus.NewInvalidMetric(queueDepthDesc, err)
		return
	}
	for _, qc := range counts {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(qc.Count), qc.Queue, qc.State)
	}
}

// slogErrorLog adapts slog to promhttp's error logger.
type slogErrorLog struct{ logger *slog.Logger }

func (l slogErrorLog) Println(v ...any) {
	l.logger.Warn("metrics: serve", slog.String("error", fmt.Sprint(v...)))
}
