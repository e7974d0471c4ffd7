package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/worker"
)

// opsFlags are the settings for running ciclo in production: role, workers
// per queue, retention, rescue of stuck jobs, shutdown and the credentials
// of /metrics and the River UI.
type opsFlags struct {
	role                                                        string
	metricsToken, uiUser, uiPassword                            string
	evaluateWorkers, sweepWorkers, emailWorkers, webhookWorkers int
	jobRetention, shutdownTimeout, rescueAfter, jobTimeout      time.Duration
	envErrs                                                     []error // malformed environment values
}

func (o *opsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.role, "role", env("CICLO_ROLE", app.RoleAll), "what this process runs (env CICLO_ROLE): api (HTTP API and River UI, only enqueues jobs), worker (works jobs; HTTP serves only /healthz, /readyz, /metrics) or all")
	fs.StringVar(&o.metricsToken, "metrics-token", env("CICLO_METRICS_TOKEN", ""), "bearer token that opens /metrics only, for a scraper (env CICLO_METRICS_TOKEN); the API token opens it too")
	fs.StringVar(&o.uiUser, "ui-user", env("CICLO_UI_USER", ""), "user for HTTP basic auth to the River UI at /riverui/ (env CICLO_UI_USER); the API token as bearer token opens it too")
	fs.StringVar(&o.uiPassword, "ui-password", env("CICLO_UI_PASSWORD", ""), "password for the River UI user (env CICLO_UI_PASSWORD)")
	fs.IntVar(&o.evaluateWorkers, "evaluate-workers", o.envInt("CICLO_EVALUATE_WORKERS", worker.EvaluateWorkersDefault), "concurrent jobs of the evaluate queue in this process (env CICLO_EVALUATE_WORKERS)")
	fs.IntVar(&o.sweepWorkers, "sweep-workers", o.envInt("CICLO_SWEEP_WORKERS", worker.SweepWorkersDefault), "concurrent jobs of the sweep queue in this process (env CICLO_SWEEP_WORKERS)")
	fs.IntVar(&o.emailWorkers, "email-workers", o.envInt("CICLO_EMAIL_WORKERS", worker.EmailWorkersDefault), "concurrent jobs of the email queue in this process (env CICLO_EMAIL_WORKERS)")
	fs.IntVar(&o.webhookWorkers, "webhook-workers", o.envInt("CICLO_WEBHOOK_WORKERS", worker.WebhookWorkersDefault), "concurrent jobs of the webhook queue in this process (env CICLO_WEBHOOK_WORKERS)")
	fs.DurationVar(&o.jobRetention, "job-retention", o.envDuration("CICLO_JOB_RETENTION", worker.JobRetentionDefault), "how long completed, cancelled and discarded jobs stay in river_job (env CICLO_JOB_RETENTION)")
	fs.DurationVar(&o.rescueAfter, "rescue-after", o.envDuration("CICLO_RESCUE_AFTER", worker.RescueAfterDefault), "how long a job may stay running before River presumes its worker dead and runs it again, e.g. a killed worker's emails (env CICLO_RESCUE_AFTER); must be longer than --job-timeout")
	fs.DurationVar(&o.jobTimeout, "job-timeout", o.envDuration("CICLO_JOB_TIMEOUT", worker.LongestJobTimeout), "the longest a job that sends may run, a dispatch batch (env CICLO_JOB_TIMEOUT); other jobs get the shorter of this and "+worker.JobTimeoutDefault.String()+"; deliveries a batch has not tried by then get jobs of their own")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", o.envDuration("CICLO_SHUTDOWN_TIMEOUT", app.ShutdownTimeoutDefault), "on SIGTERM, how long running jobs and requests get to finish before they are cancelled (env CICLO_SHUTDOWN_TIMEOUT)")
}

// validate checks the values that flags alone cannot.
func (o *opsFlags) validate() error {
	if len(o.envErrs) > 0 {
		return errors.Join(o.envErrs...)
	}
	switch o.role {
	case app.RoleAll, app.RoleAPI, app.RoleWorker:
	default:
		return fmt.Errorf("--role %q: use api, worker or all", o.role)
	}
	for name, n := range map[string]int{"evaluate-workers": o.evaluateWorkers, "sweep-workers": o.sweepWorkers,
		"email-workers": o.emailWorkers, "webhook-workers": o.webhookWorkers} {
		if n < 1 {
			return fmt.Errorf("--%s %d: must be at least 1", name, n)
		}
	}
	if o.jobRetention <= 0 || o.shutdownTimeout <= 0 {
		return fmt.Errorf("--job-retention and --shutdown-timeout must be positive durations such as 24h or 30s")
	}
	if o.jobTimeout < time.Second {
		return fmt.Errorf("--job-timeout %s (CICLO_JOB_TIMEOUT): must be at least 1s; the default is %s", o.jobTimeout, worker.LongestJobTimeout)
	}
	if o.rescueAfter <= o.jobTimeout {
		return fmt.Errorf("--rescue-after %s (CICLO_RESCUE_AFTER): must be longer than %s, the longest a job that sends may run (a dispatch batch, --job-timeout), "+
			"or a job still sending would be run a second time and its emails sent twice; the default is %s",
			o.rescueAfter, o.jobTimeout, worker.RescueAfterDefault)
	}
	if (o.uiUser == "") != (o.uiPassword == "") {
		return fmt.Errorf("set both CICLO_UI_USER and CICLO_UI_PASSWORD, or neither")
	}
	return nil
}

// apply copies the settings into cfg.
func (o *opsFlags) apply(cfg *app.Config) {
	cfg.Role, cfg.MetricsToken, cfg.UIUser, cfg.UIPassword = o.role, o.metricsToken, o.uiUser, o.uiPassword
	cfg.ShutdownTimeout = o.shutdownTimeout
	cfg.Worker.EvaluateWorkers, cfg.Worker.SweepWorkers = o.evaluateWorkers, o.sweepWorkers
	cfg.Worker.EmailWorkers, cfg.Worker.WebhookWorkers = o.emailWorkers, o.webhookWorkers
	cfg.Worker.JobRetention = o.jobRetention
	cfg.Worker.RescueAfter = o.rescueAfter
	cfg.Worker.BatchTimeout = o.jobTimeout
}

// envInt is env for integers; validate reports a malformed value.
func (o *opsFlags) envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		o.envErrs = append(o.envErrs, fmt.Errorf("%s=%q: not an integer", name, v))
	}
	return def
}

// envDuration is env for durations such as 30s or 24h.
func (o *opsFlags) envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		o.envErrs = append(o.envErrs, fmt.Errorf("%s=%q: not a duration such as 30s or 24h", name, v))
	}
	return def
}
