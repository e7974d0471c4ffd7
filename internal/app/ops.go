package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"riverqueue.com/riverui"

	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/server"
	"github.com/ciclohq/ciclo/store"
)

// Roles a process can run in (Config.Role).
const (
	// RoleAll runs the HTTP API and the job workers in one process.
	RoleAll = "all"
	// RoleAPI runs the HTTP API and the River UI only; its River client
	// only inserts jobs.
	RoleAPI = "api"
	// RoleWorker runs the job workers; its HTTP server answers only
	// /healthz, /readyz and /metrics.
	RoleWorker = "worker"
)

// runsAPI reports whether the process serves the events API.
func (c *Config) runsAPI() bool { return c.Role != RoleWorker }

// runsWorkers reports whether the process works jobs.
func (c *Config) runsWorkers() bool { return c.Role != RoleAPI }

func (c *Config) fillOps() error {
	switch c.Role {
	case "":
		c.Role = RoleAll
	case RoleAll, RoleAPI, RoleWorker:
	default:
		return fmt.Errorf("role %q: use api, worker or all", c.Role)
	}
	return nil
}

// newMetrics returns the process's metrics, with River's queue depth read
// at scrape time.
func (a *App) newMetrics() *metrics.Metrics {
	schema := a.cfg.Worker.Schema
	return metrics.New(&metrics.Config{
		Logger: a.cfg.Logger,
		QueueDepth: func(ctx context.Context) ([]metrics.QueueCount, error) {
			counts, err := store.New(a.Pool).QueueDepth(ctx, schema)
			if err != nil {
				return nil, err
			}
			out := make([]metrics.QueueCount, len(counts))
			for i, c := range counts {
				out[i] = metrics.QueueCount{Queue: c.Queue, State: c.State, Count: c.Count}
			}
			return out, nil
		},
	})
}

// buildOps builds the HTTP front: the ops endpoints, the River UI and, in
// an API process, the API.
func (a *App) buildOps() error {
	cfg := &server.OpsConfig{
		Pool: a.Pool, Rules: a.Rules, APIToken: a.cfg.APIToken, MetricsToken: a.cfg.MetricsToken,
		UIUser: a.cfg.UIUser, UIPassword: a.cfg.UIPassword, Metrics: a.Metrics, Logger: a.cfg.Logger,
		RulesReloadError: func() (string, time.Time) {
			if f := a.LastReloadFailure(); f != nil {
				return f.Error, f.At
			}
			return "", time.Time{}
		},
		// Sessions are signed with the unsubscribe secret of the settings
		// table, so that every process accepts every other's logins.
		SessionSecret: a.cfg.Secret, PublicURL: a.cfg.PublicURL, RequestTimeout: a.cfg.HTTP.RequestTimeout, Now: a.cfg.Now,
	}
	if a.smtpCheck != nil {
		cfg.SMTP = a.smtpCheck.Check
	}
	if a.cfg.runsAPI() {
		ui, err := riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints: riverui.NewEndpoints(a.River, nil),
			Logger:    slog.New(quietCancel{a.cfg.Logger.Handler()}),
			Prefix:    "/riverui",
		})
		if err != nil {
			return fmt.Errorf("river ui: %w", err)
		}
		a.riverUI = ui
		cfg.RiverUI = ui
		cfg.APIRoutes = a.Server.Routes()
	}
	a.ops = server.NewOps(cfg)
	a.handler = a.ops.Handler()
	return nil
}

// Routes returns the route table the HTTP server serves: every route with
// its auth rule, body limit and deadline.
func (a *App) Routes() []server.Route { return a.ops.Routes() }

// startOps starts the River UI's background services; stopOps ends them.
func (a *App) startOps() error {
	if a.riverUI == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.stopUI = cancel
	if err := a.riverUI.Start(ctx); err != nil {
		cancel()
		return fmt.Errorf("start river ui: %w", err)
	}
	return nil
}

func (a *App) stopOps() {
	if a.stopUI != nil {
		a.stopUI()
	}
}
