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
	"slices"
	"sync"
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
	ruleErrors       *prometheus.CounterVec
	reloadErrors     prometheus.Counter
	lastReloadOK     prometheus.Gauge
	queueDepth       *queueDepthCollector
}

// Labels are the label values known before anything happens, so that
// every series is exported (at zero) from the first scrape and dashboards
// and rate() work before the first event. See Metrics.Known.
type Labels struct {
	// EventTypes are the event types rules are triggered by.
	EventTypes []string
	// EventRules are the rules evaluated on events; Rules every rule.
	EventRules, Rules []string
	// ScheduledRules are the rules swept on a schedule.
	ScheduledRules []string
	// Transitions are the from and to stages rules can move customers between.
	Transitions [][2]string
	// Channels and DeliveryStatuses label ciclo_deliveries_total.
	Channels, DeliveryStatuses []string
	// JobKinds are the River job kinds ciclo runs.
	JobKinds []string
	// Queues are River's queues; with JobStates they label ciclo_river_jobs.
	Queues, JobStates []string
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
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "rule_errors_total",
			Help: "Rules skipped for an event because their condition failed at run time (e.g. a missing or string property compared with a number), by rule. `ciclo customer` shows each.",
		}, []string{"rule"}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "rules_reload_errors_total",
			Help: "Rules reloads rejected (the file had errors); the last good rule set keeps running.",
		}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "rules_last_reload_ok",
			Help: "1 when the last rules load or reload succeeded, 0 when it was rejected (see /readyz for the error).",
		}),
	}
	m.lastReloadOK.Set(1) // New is called once the rules loaded
	if m.logger == nil {
		m.logger = slog.Default()
	}
	m.registry.MustRegister(m.eventsIngested, m.ruleEvaluations, m.ruleFirings, m.stageTransitions,
		m.deliveries, m.deliveryLatency, m.sweepDuration, m.jobErrors, m.ruleErrors, m.reloadErrors, m.lastReloadOK,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.QueueDepth != nil {
		timeout := cfg.QueueDepthTimeout
		if timeout <= 0 {
			timeout = QueueDepthTimeoutDefault
		}
		m.queueDepth = &queueDepthCollector{read: cfg.QueueDepth, timeout: timeout, logger: m.logger}
		m.registry.MustRegister(m.queueDepth)
	}
	return m
}

// Known creates the series of every known label value at zero (a counter
// or histogram series exists only once touched), so /metrics exports them
// from the start. Call it at start and after each rules reload; series of
// labels no longer known keep their values.
func (m *Metrics) Known(l Labels) {
	if m == nil {
		return
	}
	for _, t := range l.EventTypes {
		m.eventsIngested.WithLabelValues(t)
	}
	for _, r := range l.EventRules {
		for _, result := range []string{"match", "no_match", "error"} {
			m.ruleEvaluations.WithLabelValues(r, result)
		}
		m.ruleErrors.WithLabelValues(r)
	}
	for _, r := range l.Rules {
		m.ruleFirings.WithLabelValues(r)
	}
	for _, r := range l.ScheduledRules {
		m.sweepDuration.WithLabelValues(r)
	}
	for _, t := range l.Transitions {
		m.stageTransitions.WithLabelValues(t[0], t[1])
	}
	for _, c := range l.Channels {
		m.deliveryLatency.WithLabelValues(c)
		for _, s := range l.DeliveryStatuses {
			m.deliveries.WithLabelValues(c, s)
		}
	}
	for _, k := range l.JobKinds {
		m.jobErrors.WithLabelValues(k)
	}
	if m.queueDepth != nil {
		m.queueDepth.setKnown(l.Queues, l.JobStates)
	}
}

// RulesLoaded records the outcome of a rules reload: ok, or rejected.
func (m *Metrics) RulesLoaded(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.lastReloadOK.Set(1)
		return
	}
	m.reloadErrors.Inc()
	m.lastReloadOK.Set(0)
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

	mu            sync.Mutex
	queues, state []string // known labels, exported at 0 when no job has them
}

func (c *queueDepthCollector) setKnown(queues, states []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queues, c.state = slices.Clone(queues), slices.Clone(states)
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
	seen := map[[2]string]bool{}
	for _, qc := range counts {
		seen[[2]string{qc.Queue, qc.State}] = true
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(qc.Count), qc.Queue, qc.State)
	}
	c.mu.Lock()
	queues, states := c.queues, c.state
	c.mu.Unlock()
	for _, q := range queues {
		for _, s := range states {
			if !seen[[2]string{q, s}] {
				ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, 0, q, s)
			}
		}
	}
}

// slogErrorLog adapts slog to promhttp's error logger.
type slogErrorLog struct{ logger *slog.Logger }

func (l slogErrorLog) Println(v ...any) {
	l.logger.Warn("metrics: serve", slog.String("error", fmt.Sprint(v...)))
}
