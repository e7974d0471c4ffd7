package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
)

// Defaults for Config.
const (
	EvaluateWorkersDefault = 20
	// EmailWorkersDefault is high because a dispatch job mostly waits (on
	// Postgres and SMTP): 30 sent ~1.5–2× the emails/s of 10 in BenchmarkDispatch.
	EmailWorkersDefault   = 30
	WebhookWorkersDefault = 10
	// FetchCooldownDefault is lower than River's 100 ms so a busy queue is
	// not capped at MaxWorkers jobs per 100 ms (see DESIGN.md, measured facts).
	FetchCooldownDefault     = 10 * time.Millisecond
	FetchPollIntervalDefault = 250 * time.Millisecond
	// JobRetentionDefault keeps finished jobs briefly so tables stay small;
	// the durable record is ciclo's own tables.
	JobRetentionDefault = 24 * time.Hour
	// JobTimeoutDefault is how long a job without a timeout of its own
	// (evaluate, single dispatch) may run: River's default, set explicitly.
	JobTimeoutDefault = time.Minute
	// LongestJobTimeout is the longest a job that sends may run: a dispatch
	// batch. Sweep shards may run longer (SweepShardTimeout), but River
	// never rescues a job before its own timeout has passed, and a shard run
	// twice fires nobody twice (unique occurrences).
	LongestJobTimeout = dispatchBatchTimeout
	// RescueAfterDefault is how long a job may stay running before River
	// presumes its worker dead and runs it again: a minute above
	// LongestJobTimeout, so that a job cancelled at its timeout has time to
	// record what it sent before anyone may retry it. River's own default is
	// an hour, which leaves a crashed worker's emails waiting that long.
	RescueAfterDefault = LongestJobTimeout + time.Minute
)

// Config configures the River client that runs ciclo's jobs.
type Config struct {
	// Rules holds the rule set in force. Required.
	Rules *rules.Holder
	// Dispatch is what deliveries are sent with. Required unless InsertOnly.
	Dispatch *DispatchConfig
	// InsertOnly builds a client that only enqueues (an API-only process).
	InsertOnly bool
	// Logger receives the workers' logs. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now Clock
	// EvaluateWorkers, EmailWorkers, WebhookWorkers and SweepWorkers are the
	// concurrent jobs per queue in this process. Defaults: the
	// XxxWorkersDefault constants.
	EvaluateWorkers, EmailWorkers, WebhookWorkers, SweepWorkers int
	// FetchCooldown and FetchPollInterval tune how eagerly queues fetch.
	// Defaults: FetchCooldownDefault, FetchPollIntervalDefault.
	FetchCooldown, FetchPollInterval time.Duration
	// JobRetention is how long completed, cancelled and discarded jobs are
	// kept. Default: JobRetentionDefault.
	JobRetention time.Duration
	// RescueAfter is how long a job may stay running before River rescues
	// it (a crashed worker's jobs are run again elsewhere after it); River
	// waits for a job's own timeout too, if longer. It must exceed
	// JobTimeout. Default: RescueAfterDefault.
	RescueAfter time.Duration
	// JobTimeout is how long a job without a timeout of its own may run
	// (tests shorten it with RescueAfter). Default: the shorter of
	// JobTimeoutDefault and BatchTimeout.
	JobTimeout time.Duration
	// BatchTimeout is how long a dispatch batch job, the longest job that
	// sends, may run; deliveries it has not tried by then get jobs of their
	// own. RescueAfter must exceed it. Default: LongestJobTimeout.
	BatchTimeout time.Duration
	// RetryPolicy overrides River's backoff (tests use a short one). Default: River's.
	RetryPolicy river.ClientRetryPolicy
	// Schema is the Postgres schema of River's tables. Default: the search path.
	Schema string
	// SweepShardSize is about how many customers one sweep shard covers.
	// Default: SweepShardSizeDefault.
	SweepShardSize int
	// SweepPageSize is how many customers a shard reads per query. Default:
	// SweepPageSizeDefault.
	SweepPageSize int
	// SweepFireBatch is about how many matching customers a sweep shard
	// fires in one transaction (locked meanwhile), gathered over as many
	// pages as it takes. Default: SweepFireBatchDefault.
	SweepFireBatch int
	// CouponExpiryInterval is how often expired coupons are reported as
	// coupon_expired events. Default: CouponExpiryIntervalDefault.
	CouponExpiryInterval time.Duration
	// PointsExpiryInterval is how often expired points lots are closed and
	// expiring ones reminded of. Default: PointsExpiryIntervalDefault.
	PointsExpiryInterval time.Duration
	// PointsExpiryBatch is how many lots one points expiry transaction
	// handles. Default: PointsExpiryBatchDefault.
	PointsExpiryBatch int
	// PointsExpiryParts is how many connections the points expiry sweep
	// uses side by side, each on its share of the customers. Default:
	// PointsExpiryPartsDefault.
	PointsExpiryParts int
	// TierSweepInterval is how often every customer's loyalty tier is
	// derived again (tiers fall as windows roll past). Default:
	// TierSweepIntervalDefault.
	TierSweepInterval time.Duration
	// ReportFoldInterval is how often the report rollups are folded.
	// Default: ReportFoldIntervalDefault.
	ReportFoldInterval time.Duration
	// ID names this client in river_job.attempted_by and River's leader
	// election; give each process its own. Default: River's, host name and
	// start time.
	ID string
	// Metrics, optional, receives job metrics (errors by kind, rule
	// evaluations and firings, transitions, deliveries). Nil: none.
	Metrics *metrics.Metrics
}

func (c *Config) withDefaults() *Config {
	out := *c
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	out.EvaluateWorkers = valOrDefault(out.EvaluateWorkers, EvaluateWorkersDefault)
	out.EmailWorkers = valOrDefault(out.EmailWorkers, EmailWorkersDefault)
	out.WebhookWorkers = valOrDefault(out.WebhookWorkers, WebhookWorkersDefault)
	out.FetchCooldown = valOrDefault(out.FetchCooldown, FetchCooldownDefault)
	out.FetchPollInterval = valOrDefault(out.FetchPollInterval, FetchPollIntervalDefault)
	out.JobRetention = valOrDefault(out.JobRetention, JobRetentionDefault)
	out.RescueAfter = valOrDefault(out.RescueAfter, RescueAfterDefault)
	out.BatchTimeout = valOrDefault(out.BatchTimeout, LongestJobTimeout)
	out.JobTimeout = valOrDefault(out.JobTimeout, min(JobTimeoutDefault, out.BatchTimeout))
	out.SweepWorkers = valOrDefault(out.SweepWorkers, SweepWorkersDefault)
	out.SweepShardSize = valOrDefault(out.SweepShardSize, SweepShardSizeDefault)
	out.SweepPageSize = valOrDefault(out.SweepPageSize, SweepPageSizeDefault)
	out.SweepFireBatch = valOrDefault(out.SweepFireBatch, SweepFireBatchDefault)
	out.CouponExpiryInterval = valOrDefault(out.CouponExpiryInterval, CouponExpiryIntervalDefault)
	out.PointsExpiryInterval = valOrDefault(out.PointsExpiryInterval, PointsExpiryIntervalDefault)
	out.PointsExpiryBatch = valOrDefault(out.PointsExpiryBatch, PointsExpiryBatchDefault)
	out.PointsExpiryParts = valOrDefault(out.PointsExpiryParts, PointsExpiryPartsDefault)
	out.TierSweepInterval = valOrDefault(out.TierSweepInterval, TierSweepIntervalDefault)
	out.ReportFoldInterval = valOrDefault(out.ReportFoldInterval, ReportFoldIntervalDefault)
	return &out
}

func valOrDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// NewClient builds the River client with ciclo's queues and workers.
func NewClient(pool *pgxpool.Pool, cfg *Config) (*river.Client[pgx.Tx], error) {
	rc, err := riverConfig(pool, cfg)
	if err != nil {
		return nil, err
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}

// riverConfig is the River client configuration NewClient uses.
func riverConfig(pool *pgxpool.Pool, cfg *Config) (*river.Config, error) {
	if cfg == nil || cfg.Rules == nil {
		return nil, errors.New("worker config: Rules is required")
	}
	cfg = cfg.withDefaults()
	if cfg.RescueAfter <= cfg.JobTimeout {
		return nil, fmt.Errorf("worker config: RescueAfter %s must be longer than JobTimeout %s, or running jobs would be rescued",
			cfg.RescueAfter, cfg.JobTimeout)
	}
	if cfg.RescueAfter <= cfg.BatchTimeout {
		return nil, fmt.Errorf("worker config: RescueAfter %s must be longer than BatchTimeout %s, or a batch still sending would be rescued and its emails sent twice",
			cfg.RescueAfter, cfg.BatchTimeout)
	}
	rc := &river.Config{
		ID:                          cfg.ID,
		Logger:                      cfg.Logger,
		Schema:                      cfg.Schema,
		FetchCooldown:               cfg.FetchCooldown,
		FetchPollInterval:           cfg.FetchPollInterval,
		CompletedJobRetentionPeriod: cfg.JobRetention,
		CancelledJobRetentionPeriod: cfg.JobRetention,
		DiscardedJobRetentionPeriod: cfg.JobRetention,
		RetryPolicy:                 cfg.RetryPolicy,
		JobTimeout:                  cfg.JobTimeout,
		RescueStuckJobsAfter:        cfg.RescueAfter,
	}
	if !cfg.InsertOnly {
		d := cfg.Dispatch
		if d == nil || d.Email == nil || d.Webhook == nil || d.Templates == nil || d.Unsubscribe == nil || d.From == "" {
			return nil, errors.New("worker config: Dispatch needs Email, Webhook, Templates, Unsubscribe and From")
		}
		workers := river.NewWorkers()
		js := newJourneys(cfg.Rules, cfg.Logger)
		if err := river.AddWorkerSafely(workers, &EvaluateWorker{pool: pool, rules: cfg.Rules, now: cfg.Now, logger: cfg.Logger, journeys: js}); err != nil {
			return nil, fmt.Errorf("add evaluate worker: %w", err)
		}
		if err := river.AddWorkerSafely(workers, &JourneyStepWorker{pool: pool, journeys: js, now: cfg.Now}); err != nil {
			return nil, fmt.Errorf("add journey step worker: %w", err)
		}
		dp := newDispatcher(d, pool, cfg.Rules, cfg.Now, cfg.Logger, cfg.RetryPolicy)
		dp.batchTimeout = cfg.BatchTimeout
		if err := river.AddWorkerSafely(workers, &DispatchWorker{dispatcher: dp}); err != nil {
			return nil, fmt.Errorf("add dispatch worker: %w", err)
		}
		if err := river.AddWorkerSafely(workers, &DispatchBatchWorker{dispatcher: dp}); err != nil {
			return nil, fmt.Errorf("add dispatch batch worker: %w", err)
		}
		if err := addSweepWorkers(workers, pool, cfg); err != nil {
			return nil, err
		}
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{
			jobs.QueueEvaluate: {MaxWorkers: cfg.EvaluateWorkers},
			jobs.QueueEmail:    {MaxWorkers: cfg.EmailWorkers},
			jobs.QueueWebhook:  {MaxWorkers: cfg.WebhookWorkers},
			jobs.QueueSweep:    {MaxWorkers: cfg.SweepWorkers},
			jobs.QueueJourney:  {MaxWorkers: cfg.EvaluateWorkers},
		}
		rc.Middleware = append(rc.Middleware, &crashGuard{logger: cfg.Logger})
		if cfg.Metrics != nil {
			rc.Middleware = append(rc.Middleware, &jobMetrics{m: cfg.Metrics, pool: pool, logger: cfg.Logger})
		}
		rc.PeriodicJobs = append(rc.PeriodicJobs, couponExpiryPeriodicJob(cfg), pointsExpiryPeriodicJob(cfg), tierSweepPeriodicJob(cfg),
			reportFoldPeriodicJob(cfg))
	}
	return rc, nil
}
