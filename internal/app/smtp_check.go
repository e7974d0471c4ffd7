package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ciclohq/ciclo/channels"
)

const (
	// smtpCheckTTL is how long /readyz reuses an SMTP probe's result, so
	// frequent readiness probes do not each open a session with the server.
	smtpCheckTTL = 30 * time.Second
	// smtpStartProbeTimeout bounds the probe at start.
	smtpStartProbeTimeout = 5 * time.Second
)

// smtpCheck probes the SMTP server (see channels.SMTP.Probe) for the start
// log and /readyz, caching the result for smtpCheckTTL.
type smtpCheck struct {
	smtp *channels.SMTP
	from string
	now  func() time.Time

	mu        sync.Mutex
	checkedAt time.Time
	err       error
}

// Check returns the last probe's result if it is fresh, else probes.
func (c *smtpCheck) Check(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.checkedAt.IsZero() && c.now().Sub(c.checkedAt) < smtpCheckTTL {
		return c.err
	}
	c.err = c.smtp.Probe(ctx, c.from)
	c.checkedAt = c.now()
	return c.err
}

// probeSMTP checks the SMTP configuration at start and logs what is wrong
// and how to fix it. It does not stop the start: the API keeps accepting
// events, and emails wait (a configuration error snoozes their deliveries,
// an outage retries them) until the server is reachable and configured.
func (a *App) probeSMTP(ctx context.Context) {
	if a.smtpCheck == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, smtpStartProbeTimeout)
	defer cancel()
	if err := a.smtpCheck.Check(ctx); err != nil {
		a.cfg.Logger.ErrorContext(ctx, "app: SMTP server check failed; emails wait until it is fixed",
			slog.String("error", err.Error()))
		return
	}
	a.cfg.Logger.InfoContext(ctx, "app: SMTP server check passed")
}
