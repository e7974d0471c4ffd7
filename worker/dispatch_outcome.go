package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/store"
)

// ConfigErrorRetry is how long an email delivery waits after the SMTP
// server turned it away for a configuration error (see
// channels.IsConfigError) before it is tried again. The wait counts no
// attempt: once the configuration is fixed the delivery goes out with its
// whole budget.
const ConfigErrorRetry = 5 * time.Minute

// undeliverableError means a delivery can never be sent as stored (unknown
// template, no address, no webhook secret): it is recorded as failed and its
// job cancelled, while other errors are retried.
type undeliverableError struct{ msg string }

func (e *undeliverableError) Error() string { return e.msg }

func undeliverable(format string, args ...any) error {
	return &undeliverableError{msg: fmt.Sprintf(format, args...)}
}

// sent sets the outcome of a send.
func (w *dispatcher) sent(job *rivertype.JobRow, s *sending, res channels.Result, sendErr error) {
	out := &store.Outcome{Attempted: true, ProviderID: res.ProviderID, ResponseCode: res.StatusCode, Response: res.Response, At: w.now()}
	s.out, s.err = out, sendErr
	if sendErr == nil {
		out.Status = store.DeliverySent
		return
	}
	out.Error = sendErr.Error()
	var se *channels.SendError
	if errors.As(sendErr, &se) {
		if se.Code != 0 {
			out.ResponseCode = se.Code
		}
		out.BounceClass, out.EnhancedStatus = se.Bounce, se.Enhanced
	}
	if channels.IsConfigError(sendErr) {
		// The SMTP configuration is wrong (no STARTTLS, credentials or
		// sender refused): backing off for hours would only hide it, and
		// failing would lose the email. The delivery waits, with the fix in
		// last_error and no attempt counted, and is tried again shortly.
		out.Status, out.Attempted = store.DeliveryQueued, false
		s.snooze = ConfigErrorRetry
		return
	}
	permanent := channels.IsPermanent(sendErr)
	// The last try: the job's (a lone delivery's) or the delivery's own.
	last := job.Attempt >= job.MaxAttempts || s.dp.Delivery.Attempts+1 >= jobs.DispatchMaxAttempts
	if !permanent && !last {
		out.Status = store.DeliveryQueued
		return
	}
	out.Status = store.DeliveryFailed
	// Only a bad mailbox (5.1.x at RCPT TO or the end of DATA) is a hard
	// bounce: a policy or other 5xx (sender policy, content, reputation)
	// would otherwise suppress every customer a misconfigured or picky
	// relay turned away.
	if permanent && s.dp.Delivery.Channel == "email" && se != nil && se.Bounce == channels.BounceMailbox {
		out.Bounce = s.dp.Customer.Email
	}
}

// noted tells the metrics middleware the recorded outcomes and logs the
// failures.
func (w *dispatcher) noted(ctx context.Context, todo []*sending) {
	for _, s := range todo {
		if s.out == nil {
			continue
		}
		noteOutcome(ctx, s.dp.Delivery.Channel, &store.DeliveryOutcome{Status: s.out.Status, SentAt: s.out.At, OriginAt: s.dp.OriginAt})
		if s.out.BounceClass == channels.BounceConfig {
			d := s.dp.Delivery
			w.logger.ErrorContext(ctx, "dispatch: SMTP configuration error; the delivery waits for a fix",
				slog.Int64("delivery_id", d.ID), slog.String("customer_id", d.CustomerID),
				slog.Duration("retry_in", ConfigErrorRetry), slog.String("error", s.out.Error))
		}
		if s.out.Status == store.DeliveryFailed {
			d := s.dp.Delivery
			w.logger.WarnContext(ctx, "dispatch: delivery failed", slog.Int64("delivery_id", d.ID),
				slog.String("customer_id", d.CustomerID), slog.String("channel", d.Channel), slog.String("rule", d.Rule),
				slog.Bool("permanent", channels.IsPermanent(s.err) || isUndeliverable(s.err)),
				slog.Int("attempts", d.Attempts+1), slog.String("error", s.out.Error))
		}
	}
}

// isUndeliverable says err means a delivery can never be sent as stored.
func isUndeliverable(err error) bool {
	var ue *undeliverableError
	return errors.As(err, &ue)
}
