package worker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/templates"
	"github.com/ciclohq/ciclo/unsubscribe"
)

// DispatchConfig is what the dispatch worker sends with.
type DispatchConfig struct {
	// Email sends email: SMTP, or the outbox when no server is configured. Required.
	Email channels.Channel
	// Webhook calls webhooks. Required.
	Webhook channels.Channel
	// Templates renders emails. Required.
	Templates *templates.Set
	// Unsubscribe makes the signed unsubscribe links. Required.
	Unsubscribe *unsubscribe.Signer
	// From is the sender of every email, e.g. "Shop <news@shop.example>". Required.
	From string
	// UnsubscribeMailto, optional, is the address of the mailto: entry in
	// List-Unsubscribe (e.g. unsubscribe@shop.example).
	UnsubscribeMailto string
	// StoreName is shown in templates. Default: "our store".
	StoreName string
	// WebhookSecret signs webhooks whose rule names no secret of its own.
	WebhookSecret string

	// beforeSend, set by tests, runs right before a message's send is
	// guarded against erasure and handed to its channel.
	beforeSend func(context.Context, *channels.Message)
}

// recordTimeout bounds one try at writing a send's outcome after the send.
const recordTimeout = 10 * time.Second

// The outcome of a send the server accepted is written again after a
// database error (see writeOutcomes): first after outcomeRetryFirstWait,
// then twice as late each time up to outcomeRetryMaxWait, for up to
// outcomeRetryFor in all.
const (
	outcomeRetryFor       = 30 * time.Second
	outcomeRetryFirstWait = 50 * time.Millisecond
	outcomeRetryMaxWait   = 2 * time.Second
)

// DispatchWorker sends one delivery through its channel and records the
// outcome on the delivery row.
type DispatchWorker struct {
	river.WorkerDefaults[jobs.DispatchArgs]
	*dispatcher
}

// Work sends a queued delivery; see dispatcher.dispatch.
func (w *DispatchWorker) Work(ctx context.Context, job *river.Job[jobs.DispatchArgs]) error {
	return w.dispatch(ctx, job.JobRow, []store.DeliveryRef{{CustomerID: job.Args.CustomerID, ID: job.Args.DeliveryID}}, nil)
}

// DispatchBatchWorker sends several deliveries of one channel and records
// their outcomes.
type DispatchBatchWorker struct {
	river.WorkerDefaults[jobs.DispatchBatchArgs]
	*dispatcher
}

// Work sends a batch's queued deliveries; see dispatcher.dispatch.
func (w *DispatchBatchWorker) Work(ctx context.Context, job *river.Job[jobs.DispatchBatchArgs]) error {
	return w.dispatch(ctx, job.JobRow, deliveryRefs(job.Args), func(ctx context.Context, tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}

// Timeout gives a batch time for all its sends: Config.BatchTimeout.
func (w *DispatchBatchWorker) Timeout(*river.Job[jobs.DispatchBatchArgs]) time.Duration {
	if w.batchTimeout > 0 {
		return w.batchTimeout
	}
	return dispatchBatchTimeout
}

// dispatcher does the work of both dispatch job kinds.
type dispatcher struct {
	cfg    *DispatchConfig
	pool   *pgxpool.Pool
	rules  *rules.Holder
	now    Clock
	logger *slog.Logger
	// jobNow is River's clock, which the jobs a batch hands deliveries to
	// are scheduled by: River stamps and fetches jobs in real time whatever
	// now says, so a snooze is now's delay counted from jobNow.
	jobNow Clock

	retry        river.ClientRetryPolicy // schedules the retries of a batch's deliveries
	batchTimeout time.Duration           // a batch job's timeout; zero: dispatchBatchTimeout
	locations    sync.Map                // time zone name → *time.Location
	gates        sync.Map                // channels.Channel → chan struct{}, see sendGate

	// Single-delivery jobs running at the same moment read, claim and
	// record their deliveries together (a batch job does so on its own).
	reads  *coalescer[store.DeliveryRef, *store.Dispatch]
	claims *coalescer[store.Cap, store.CapClaim]
	writes *coalescer[store.Outcome, struct{}]
}

func newDispatcher(cfg *DispatchConfig, pool *pgxpool.Pool, rs *rules.Holder, now Clock, logger *slog.Logger,
	retry river.ClientRetryPolicy,
) *dispatcher {
	if retry == nil {
		retry = &river.DefaultClientRetryPolicy{}
	}
	st := store.New(pool)
	return &dispatcher{cfg: cfg, pool: pool, rules: rs, now: now, logger: logger, jobNow: time.Now, retry: retry,
		reads: &coalescer[store.DeliveryRef, *store.Dispatch]{max: DispatchBatchSize, timeout: recordTimeout,
			run: func(ctx context.Context, refs []store.DeliveryRef) ([]*store.Dispatch, error) {
				return st.GetDispatches(ctx, refs, now())
			}},
		claims: &coalescer[store.Cap, store.CapClaim]{max: DispatchBatchSize, timeout: recordTimeout, run: st.ClaimUnderCap},
		writes: &coalescer[store.Outcome, struct{}]{max: DispatchBatchSize, timeout: recordTimeout,
			run: func(ctx context.Context, outs []store.Outcome) ([]struct{}, error) {
				return make([]struct{}, len(outs)), st.FinishDeliveries(ctx, outs)
			}},
	}
}

// sending is one delivery on its way through a dispatch job.
type sending struct {
	dp  *store.Dispatch
	ch  channels.Channel
	msg *channels.Message // to send; nil once decided without sending
	// cap, when set, must be claimed before msg is sent.
	cap *rules.FrequencyCap
	// snooze, when positive, is how long the delivery waits for quiet hours to end.
	snooze time.Duration
	// out is the outcome to record; nil records nothing (snoozed, or not tried).
	out *store.Outcome
	// err is why it was not sent: undeliverable, a send error, or the job's end.
	err error
}

// dispatch sends the deliveries refs names that are still queued, and
// records each outcome. A delivery no longer queued is done already (a
// retry after a crash between send and job completion) and is skipped.
//
// One read of the deliveries, one frequency-cap round trip and one write of
// the outcomes cover all of refs (for a single delivery, those of the
// single-delivery jobs running at the same moment); the sends run in
// parallel. With complete nil (a single delivery's job) River decides what
// happens next from the result: a transient failure retries the job with
// backoff until its last attempt, when it is recorded as failed; quiet
// hours snooze it; a permanent failure cancels it. A batch job instead
// passes complete, which completes the job in the transaction that records
// the outcomes and gives each delivery still queued a job of its own.
func (w *dispatcher) dispatch(ctx context.Context, job *rivertype.JobRow, refs []store.DeliveryRef,
	complete func(context.Context, pgx.Tx) error,
) error {
	st := store.New(w.pool)
	dps, err := w.getDispatches(ctx, st, refs)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(dps, func(dp *store.Dispatch) bool { return dp != nil }) {
		if len(refs) == 1 {
			return river.JobCancel(fmt.Errorf("dispatch delivery %d: %w", refs[0].ID, store.ErrDeliveryNotFound))
		}
		return river.JobCancel(fmt.Errorf("dispatch %d deliveries: %w", len(refs), store.ErrDeliveryNotFound))
	}
	rs, now := w.rules.Load(), w.now()
	todo := make([]*sending, 0, len(dps))
	for _, dp := range dps {
		if dp != nil && dp.Delivery.Status == store.DeliveryQueued {
			todo = append(todo, w.prepare(ctx, rs, dp, now))
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if err := w.claimUnderCap(ctx, st, todo, now); err != nil {
		return err
	}
	w.send(ctx, job, todo)

	// Record the outcomes even if the job's context ended meanwhile
	// (shutdown, timeout): a sent email left "queued" would be sent again.
	rctx := context.WithoutCancel(ctx)
	if complete != nil {
		return w.recordBatch(rctx, todo, complete)
	}
	return w.record(rctx, st, job, todo)
}

// writeOutcomes runs write, which records the outcomes of todo, each try
// bounded by recordTimeout. When it fails after a server accepted one of
// the sends (a database restart, too many clients), the job must not end
// with the delivery still queued, or its retry would send the email again:
// the accepted outcome is kept and written again, with backoff, for up to
// outcomeRetryFor. Outcomes of sends nobody accepted are written once; a
// retry of their job does no harm.
func (w *dispatcher) writeOutcomes(ctx context.Context, todo []*sending, write func(context.Context) error) error {
	accepted := 0
	for _, s := range todo {
		if s.out != nil && s.out.Attempted && s.out.Status == store.DeliverySent {
			accepted++
		}
	}
	deadline := time.Now().Add(outcomeRetryFor)
	wait := outcomeRetryFirstWait
	for try := 1; ; try++ {
		wctx, cancel := context.WithTimeout(ctx, recordTimeout)
		err := write(wctx)
		cancel()
		switch {
		case err == nil:
			if try > 1 {
				w.logger.InfoContext(ctx, "dispatch: recorded the outcomes of accepted sends after a database error",
					slog.Int("accepted", accepted), slog.Int("tries", try))
			}
			return nil
		case accepted == 0:
			return err
		case time.Now().Add(wait).After(deadline):
			return fmt.Errorf("record %d accepted sends (tried %d times over %s; their job's retry may send them again): %w",
				accepted, try, outcomeRetryFor, err)
		}
		w.logger.WarnContext(ctx, "dispatch: recording the outcomes of accepted sends failed; keeping them and trying again",
			slog.Int("accepted", accepted), slog.Int("try", try), slog.Duration("wait", wait), slog.String("error", err.Error()))
		time.Sleep(wait)
		wait = min(2*wait, outcomeRetryMaxWait)
	}
}

// prepare decides what happens to a queued delivery short of the frequency
// cap: the message to send, or an outcome, or a snooze.
func (w *dispatcher) prepare(ctx context.Context, rs *rules.RuleSet, dp *store.Dispatch, now time.Time) *sending {
	s := &sending{dp: dp}
	var err error
	switch dp.Delivery.Channel {
	case "email":
		s.ch = w.cfg.Email
		err = w.email(ctx, rs, s, now)
	case "webhook":
		s.ch = w.cfg.Webhook
		s.msg, err = w.webhook(rs, dp)
	default:
		err = undeliverable("unknown channel %q", dp.Delivery.Channel)
	}
	if err != nil {
		// Rendering and configuration errors do not heal by retrying.
		s.msg, s.err = nil, err
		s.out = &store.Outcome{Status: store.DeliveryFailed, Error: err.Error(), At: now}
	}
	return s
}
