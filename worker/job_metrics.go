package worker

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/store"
)

// outcomeTimeout bounds the read of a delivery's outcome after dispatch.
const outcomeTimeout = 2 * time.Second

// clockSlack is the clock difference tolerated between a process and Postgres.
const clockSlack = time.Second

// jobMetrics is River worker middleware that records ciclo's job metrics:
// it gives each work attempt a metrics.Job in its context (counted when the
// attempt succeeds), counts errors and panics by job kind, and after each
// dispatch reads the delivery's outcome for the delivery counters and the
// event-to-hand-off latency.
type jobMetrics struct {
	river.MiddlewareDefaults

	m      *metrics.Metrics
	pool   *pgxpool.Pool
	logger *slog.Logger
}

var _ rivertype.WorkerMiddleware = (*jobMetrics)(nil)

// Work runs the job with a metrics recorder in its context.
func (mw *jobMetrics) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) (err error) {
	rec := mw.m.NewJob()
	var noted *notedOutcome
	defer func() {
		if p := recover(); p != nil {
			rec.Discard()
			mw.m.JobError(job.Kind)
			panic(p)
		}
		if err != nil {
			rec.Discard()
			mw.m.JobError(job.Kind)
		} else {
			rec.Flush()
		}
		if noted != nil {
			mw.recordDeliveries(ctx, job, noted.outs)
		}
	}()
	ctx = metrics.WithJob(ctx, rec)
	if job.Kind == (jobs.DispatchArgs{}).Kind() || job.Kind == (jobs.DispatchBatchArgs{}).Kind() {
		noted = &notedOutcome{}
		ctx = context.WithValue(ctx, notedOutcomeKey{}, noted)
	}
	return doInner(ctx)
}

// notedOutcomeKey is the context key of a dispatch attempt's *notedOutcome.
type notedOutcomeKey struct{}

// notedOutcome is the outcomes a dispatch attempt recorded, if any.
type notedOutcome struct{ outs []channelOutcome }

// channelOutcome is a delivery's outcome and its channel.
type channelOutcome struct {
	channel string
	out     *store.DeliveryOutcome
}

// noteOutcome tells the metrics middleware, if any, an outcome a dispatch
// attempt recorded. Not safe for concurrent use within one job.
func noteOutcome(ctx context.Context, channel string, out *store.DeliveryOutcome) {
	if n, ok := ctx.Value(notedOutcomeKey{}).(*notedOutcome); ok {
		n.outs = append(n.outs, channelOutcome{channel, out})
	}
}

// recordDeliveries counts the outcomes a dispatch attempt noted. A single
// delivery's job that noted none (it found the delivery done already,
// snoozed, or failed before recording) has its outcome read back.
func (mw *jobMetrics) recordDeliveries(ctx context.Context, job *rivertype.JobRow, outs []channelOutcome) {
	if len(outs) == 0 && job.Kind == (jobs.DispatchArgs{}).Kind() {
		var args jobs.DispatchArgs
		if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outcomeTimeout)
		defer cancel()
		out, err := store.New(mw.pool).GetDeliveryOutcome(ctx, args.CustomerID, args.DeliveryID)
		if err != nil {
			mw.logger.DebugContext(ctx, "metrics: read delivery outcome failed", slog.Int64("delivery_id", args.DeliveryID), slog.String("error", err.Error()))
			return
		}
		outs = append(outs, channelOutcome{args.Channel, out})
	}
	for _, o := range outs {
		mw.recordDelivery(job, o.channel, o.out)
	}
}

// recordDelivery counts a delivery by the status a dispatch attempt left it
// in ("retry" when it stays queued for another attempt) and, when it was
// sent, observes the latency from the event's arrival.
func (mw *jobMetrics) recordDelivery(job *rivertype.JobRow, channel string, out *store.DeliveryOutcome) {
	// A delivery sent by an earlier attempt (a retry after a crash) was
	// counted then. The slack covers clock differences between this process
	// (sent_at) and Postgres (attempted_at).
	if out.Status == store.DeliverySent && job.AttemptedAt != nil && out.SentAt.Before(job.AttemptedAt.Add(-clockSlack)) {
		return
	}
	status := out.Status
	if status == store.DeliveryQueued {
		status = "retry"
	}
	mw.m.Delivery(channel, status)
	if status == store.DeliverySent {
		mw.m.ObserveDeliveryLatency(channel, out.SentAt.Sub(out.OriginAt))
	}
}
