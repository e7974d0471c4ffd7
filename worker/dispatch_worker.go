package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/templates"
	"github.com/ciclohq/ciclo/unsubscribe"
)

// DispatchMaxAttempts is how often a delivery is tried before it is
// recorded as failed. With River's default backoff (attempt⁴ seconds) the
// last try is about five hours after the first.
const DispatchMaxAttempts = 10

// ConfigErrorRetry is how long an email delivery waits after the SMTP
// server turned it away for a configuration error (see
// channels.IsConfigError) before it is tried again. The wait counts no
// attempt: once the configuration is fixed the delivery goes out with its
// whole budget.
const ConfigErrorRetry = 5 * time.Minute

// capClaimTTL is how long a delivery claimed under the frequency cap counts
// as in flight. It only matters when a worker dies mid-send: the claim of a
// finished attempt is cleared when its outcome is recorded. It outlasts a
// batch job, whose claims are taken before its first send.
const capClaimTTL = dispatchBatchTimeout + 5*time.Minute

// undeliverableError means a delivery can never be sent as stored (unknown
// template, no address, no webhook secret): it is recorded as failed and its
// job cancelled, while other errors are retried.
type undeliverableError struct{ msg string }

func (e *undeliverableError) Error() string { return e.msg }

func undeliverable(format string, args ...any) error {
	return &undeliverableError{msg: fmt.Sprintf(format, args...)}
}

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
}

// recordTimeout bounds writing a send's outcome after the send.
const recordTimeout = 10 * time.Second

// Batched dispatch. A sweep queues its deliveries in DispatchBatchArgs jobs
// of up to DispatchBatchSize: one job, one read and one write then cover
// many deliveries, which is what lets a campaign go out at SMTP speed
// rather than at the speed of one job and two statements per email.
//
// A batch job tries each delivery once. In the transaction that records the
// outcomes and completes the job, every delivery it leaves queued (a
// transient failure, quiet hours, not tried before the job's time ran out)
// gets a DispatchArgs job of its own, scheduled for its retry or for the
// end of its quiet hours, with what is left of its attempts. Retries,
// snoozes and the attempt budget are thus per delivery, as for a lone one.
const (
	// DispatchBatchSize is the most deliveries one batch job carries.
	DispatchBatchSize = 50
	// dispatchBatchEmails is how many of a batch job's emails are sent at
	// once; the SMTP connection pool bounds it further. A batch job's
	// webhooks go one at a time, so --webhook-workers bounds the calls to
	// receivers as it does for lone webhooks.
	dispatchBatchEmails = 8
	// dispatchBatchTimeout bounds a batch job: DispatchBatchSize sends over
	// a slow server. Deliveries not tried by then get jobs of their own.
	dispatchBatchTimeout = 10 * time.Minute
)

// DispatchWorker sends one delivery through its channel and records the
// outcome on the delivery row.
type DispatchWorker struct {
	river.WorkerDefaults[DispatchArgs]
	*dispatcher
}

// Work sends a queued delivery; see dispatcher.dispatch.
func (w *DispatchWorker) Work(ctx context.Context, job *river.Job[DispatchArgs]) error {
	return w.dispatch(ctx, job.JobRow, []store.DeliveryRef{{CustomerID: job.Args.CustomerID, ID: job.Args.DeliveryID}}, nil)
}

// DispatchBatchWorker sends several deliveries of one channel and records
// their outcomes.
type DispatchBatchWorker struct {
	river.WorkerDefaults[DispatchBatchArgs]
	*dispatcher
}

// Work sends a batch's queued deliveries; see dispatcher.dispatch.
func (w *DispatchBatchWorker) Work(ctx context.Context, job *river.Job[DispatchBatchArgs]) error {
	return w.dispatch(ctx, job.JobRow, job.Args.refs(), func(ctx context.Context, tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}

// Timeout gives a batch time for all its sends.
func (w *DispatchBatchWorker) Timeout(*river.Job[DispatchBatchArgs]) time.Duration {
	return dispatchBatchTimeout
}

// dispatcher does the work of both dispatch job kinds.
type dispatcher struct {
	cfg    *DispatchConfig
	pool   *pgxpool.Pool
	rules  *RuleSetHolder
	now    Clock
	logger *slog.Logger
	// jobNow is River's clock, which the jobs a batch hands deliveries to
	// are scheduled by: River stamps and fetches jobs in real time whatever
	// now says, so a snooze is now's delay counted from jobNow.
	jobNow Clock

	retry     river.ClientRetryPolicy // schedules the retries of a batch's deliveries
	locations sync.Map                // time zone name → *time.Location

	// Single-delivery jobs running at the same moment read, claim and
	// record their deliveries together (a batch job does so on its own).
	reads  *coalescer[store.DeliveryRef, *store.Dispatch]
	claims *coalescer[store.Cap, store.CapClaim]
	writes *coalescer[store.Outcome, struct{}]
}

func newDispatcher(cfg *DispatchConfig, pool *pgxpool.Pool, rs *RuleSetHolder, now Clock, logger *slog.Logger,
	retry river.ClientRetryPolicy,
) *dispatcher {
	if retry == nil {
		retry = &river.DefaultClientRetryPolicy{}
	}
	st := store.New(pool)
	return &dispatcher{cfg: cfg, pool: pool, rules: rs, now: now, logger: logger, jobNow: time.Now, retry: retry,
		reads:  &coalescer[store.DeliveryRef, *store.Dispatch]{max: DispatchBatchSize, timeout: recordTimeout, run: st.GetDispatches},
		claims: &coalescer[store.Cap, store.CapClaim]{max: DispatchBatchSize, timeout: recordTimeout, run: st.ClaimUnderCap},
		writes: &coalescer[store.Outcome, struct{}]{max: DispatchBatchSize, timeout: recordTimeout,
			run: func(ctx context.Context, outs []store.Outcome) ([]struct{}, error) {
				return make([]struct{}, len(outs)), st.FinishDeliveries(ctx, outs)
			}},
	}
}

// getDispatches reads refs (see store.GetDispatches): a single delivery in
// the next coalesced round.
func (w *dispatcher) getDispatches(ctx context.Context, st *store.Store, refs []store.DeliveryRef) ([]*store.Dispatch, error) {
	if len(refs) != 1 {
		return st.GetDispatches(ctx, refs)
	}
	dp, err := w.reads.do(ctx, refs[0])
	return []*store.Dispatch{dp}, err
}

// claimUnderCapRound claims caps: a single one in the next coalesced round.
func (w *dispatcher) claimUnderCapRound(ctx context.Context, st *store.Store, caps []store.Cap) ([]store.CapClaim, error) {
	if len(caps) != 1 {
		return st.ClaimUnderCap(ctx, caps)
	}
	c, err := w.claims.do(ctx, caps[0])
	if err != nil {
		return nil, err
	}
	return []store.CapClaim{c}, nil
}

// finishDeliveries records outs: a single one in the next coalesced round.
func (w *dispatcher) finishDeliveries(ctx context.Context, st *store.Store, outs []store.Outcome) error {
	if len(outs) != 1 {
		return st.FinishDeliveries(ctx, outs)
	}
	_, err := w.writes.do(ctx, outs[0])
	return err
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
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if complete != nil {
		return w.recordBatch(rctx, todo, complete)
	}
	return w.record(rctx, st, job, todo)
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

// claimUnderCap claims, in one round trip, the messages a frequency cap
// applies to; those over the cap are recorded as skipped_cap.
func (w *dispatcher) claimUnderCap(ctx context.Context, st *store.Store, todo []*sending, now time.Time) error {
	var (
		capped []*sending
		caps   []store.Cap
	)
	for _, s := range todo {
		if s.msg == nil || s.cap == nil {
			continue
		}
		d := s.dp.Delivery
		capped = append(capped, s)
		caps = append(caps, store.Cap{Delivery: store.DeliveryRef{CustomerID: d.CustomerID, ID: d.ID},
			Max: s.cap.Max, Since: now.Add(-s.cap.Per), StaleBefore: now.Add(-capClaimTTL), Now: now})
	}
	if len(caps) == 0 {
		return nil
	}
	claims, err := w.claimUnderCapRound(ctx, st, caps)
	if err != nil {
		return err
	}
	for i, c := range claims {
		if !c.Claimed {
			s := capped[i]
			s.msg = nil
			s.out = &store.Outcome{Status: store.DeliverySkippedCap, At: now,
				Error: fmt.Sprintf("frequency cap: %d marketing emails in the last %s (max %d)", c.Counted, s.cap.Per, s.cap.Max)}
		}
	}
	return nil
}

// send sends the messages of todo, several emails at a time, and sets each
// outcome. Messages not yet started when ctx ends are left queued, with no
// attempt counted.
func (w *dispatcher) send(ctx context.Context, job *rivertype.JobRow, todo []*sending) {
	parallel := dispatchBatchEmails
	if len(todo) > 0 && todo[0].dp.Delivery.Channel != "email" {
		parallel = 1
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, s := range todo {
		if s.msg == nil {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			// Not tried: clear its frequency-cap claim, count no attempt,
			// keep the last attempt's error.
			s.err = fmt.Errorf("not sent before the job's time ran out: %w", ctx.Err())
			s.out = &store.Outcome{Status: store.DeliveryQueued, Error: s.dp.Delivery.LastError, At: w.now()}
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res, err := s.ch.Send(ctx, s.msg)
			w.sent(job, s, res, err)
		}()
	}
	wg.Wait()
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
	last := job.Attempt >= job.MaxAttempts || s.dp.Delivery.Attempts+1 >= DispatchMaxAttempts
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

// record writes the outcomes of a single delivery's job (with those of the
// jobs running at the same moment) and tells River what to do next.
func (w *dispatcher) record(ctx context.Context, st *store.Store, job *rivertype.JobRow, todo []*sending) error {
	if err := w.finishDeliveries(ctx, st, outcomes(todo)); err != nil {
		return err
	}
	w.noted(ctx, todo)
	var (
		retry []error
		wait  time.Duration
		fails int
	)
	for _, s := range todo {
		if s.snooze > 0 && (wait == 0 || s.snooze < wait) {
			wait = s.snooze
		}
		switch {
		case s.out == nil:
		case s.out.Status == store.DeliveryQueued && s.snooze == 0:
			d := s.dp.Delivery
			retry = append(retry, fmt.Errorf("send %s delivery %d: %w", d.Channel, d.ID, s.err))
		case s.out.Status == store.DeliveryFailed:
			fails++
		}
	}
	switch {
	case len(retry) > 0:
		return errors.Join(retry...)
	case wait > 0:
		return river.JobSnooze(wait)
	case fails == len(todo):
		return river.JobCancel(todo[0].err)
	}
	return nil
}

// recordBatch writes the outcomes of a batch job's deliveries, queues a job
// of its own for each delivery left queued, and completes the batch job,
// all in one transaction.
func (w *dispatcher) recordBatch(ctx context.Context, todo []*sending, complete func(context.Context, pgx.Tx) error) error {
	var later []river.InsertManyParams
	now := w.jobNow()
	for _, s := range todo {
		d := s.dp.Delivery
		if s.out != nil && s.out.Status != store.DeliveryQueued {
			continue
		}
		attempts := d.Attempts
		if s.out != nil && s.out.Attempted {
			attempts++
		}
		opts := &river.InsertOpts{MaxAttempts: max(DispatchMaxAttempts-attempts, 1)}
		switch {
		case s.snooze > 0:
			opts.ScheduledAt = now.Add(s.snooze)
		case s.out != nil && s.out.Attempted:
			opts.ScheduledAt = w.retry.NextRetry(&rivertype.JobRow{Attempt: attempts, AttemptedAt: &now,
				Errors: make([]rivertype.AttemptError, attempts-1)})
		}
		later = append(later, river.InsertManyParams{
			Args:       DispatchArgs{CustomerID: d.CustomerID, DeliveryID: d.ID, Channel: d.Channel},
			InsertOpts: opts,
		})
	}
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if err := store.New(tx).FinishDeliveries(ctx, outcomes(todo)); err != nil {
			return err
		}
		if len(later) > 0 {
			client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
			if err != nil {
				return err
			}
			if _, err := client.InsertManyTx(ctx, tx, later); err != nil {
				return fmt.Errorf("queue %d deliveries of the batch on their own: %w", len(later), err)
			}
		}
		return complete(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("record the outcomes of a batch of %d deliveries: %w", len(todo), err)
	}
	w.noted(ctx, todo)
	return nil
}

// outcomes lists the outcomes todo has to record, each naming its delivery.
func outcomes(todo []*sending) []store.Outcome {
	var outs []store.Outcome
	for _, s := range todo {
		if s.out != nil {
			o := *s.out
			o.Delivery = store.DeliveryRef{CustomerID: s.dp.Delivery.CustomerID, ID: s.dp.Delivery.ID}
			outs = append(outs, o)
		}
	}
	return outs
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

// email prepares an email delivery: it sets the message to send and the
// frequency cap that applies; or the outcome when the delivery is
// suppressed; or a snooze during quiet hours. It returns an
// *undeliverableError when the delivery can never be sent. Checks run in
// this order: suppression and unsubscribe, quiet hours, rendering; the
// frequency cap is claimed later for the whole job. Transactional
// deliveries skip all but the bounce check.
// ConsentAttribute is the customer attribute a store's integration or import
// sets to false when the customer gave no email-marketing consent; such a
// customer gets transactional email only.
const ConsentAttribute = "accepts_email_marketing"

func (w *dispatcher) email(ctx context.Context, rs *rules.RuleSet, s *sending, now time.Time) error {
	dp := s.dp
	d, cust := dp.Delivery, dp.Customer
	var a EmailDelivery
	if err := json.Unmarshal(d.Action, &a); err != nil {
		return undeliverable("decode email action: %v", err)
	}
	if cust.Email == "" {
		return undeliverable("customer has no email address")
	}
	suppressed := func(reason string) error {
		s.out = &store.Outcome{Status: store.DeliverySuppressed, Error: reason, At: now}
		return nil
	}
	reason := dp.Suppressed
	switch {
	case reason == store.SuppressErased:
		return suppressed("address erased at the person's request")
	case reason == store.SuppressBounced:
		return suppressed("address bounced")
	case a.Transactional:
		// Transactional mail (receipts, coupon codes asked for) still goes
		// to unsubscribed customers, never to bounced addresses.
	case reason != "":
		return suppressed("address suppressed: " + reason)
	case !cust.UnsubscribedAt.IsZero():
		return suppressed("customer unsubscribed")
	case cust.Attributes[ConsentAttribute] == false:
		// Only a store that says so withholds consent: no field keeps
		// today's behaviour.
		return suppressed("no email-marketing consent in the store's record")
	}

	if qh := rs.Defaults.QuietHours; qh != nil && !a.Transactional {
		local := now.In(w.location(cust.Timezone))
		if qh.Contains(local) {
			s.snooze = max(qh.NextOpen(local).Sub(local), time.Second)
			w.logger.DebugContext(ctx, "dispatch: quiet hours, snoozing", slog.Int64("delivery_id", d.ID),
				slog.String("customer_id", d.CustomerID), slog.Duration("wait", s.snooze))
			return nil
		}
	}

	data := w.templateData(dp)
	r, err := w.cfg.Templates.Render(a.Template, a.Subject, data)
	if err != nil {
		return undeliverable("render template %q: %v", a.Template, err)
	}
	if !a.Transactional {
		s.cap = frequencyCap(rs, d.Rule)
	}
	list := "<" + data.UnsubscribeURL + ">"
	if w.cfg.UnsubscribeMailto != "" {
		list += ", <mailto:" + w.cfg.UnsubscribeMailto + "?subject=unsubscribe>"
	}
	s.msg = &channels.Message{
		ID:      emailID(d),
		From:    w.cfg.From,
		To:      cust.Email,
		ToName:  cust.Name,
		Subject: r.Subject,
		HTML:    r.HTML,
		Text:    r.Text,
		Headers: map[string]string{
			"List-Unsubscribe":      list,
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
	}
	return nil
}

// emailID is the Message-ID local part of an email delivery:
// "delivery-<id>.<message key>", unique everywhere thanks to the random key
// drawn when the delivery was queued, and the same on every retry. The
// channel adds the sending domain. Deliveries finished before keys existed
// have none and keep the old "delivery-<id>".
func emailID(d *store.Delivery) string {
	id := "delivery-" + strconv.FormatInt(d.ID, 10)
	if d.MessageKey != "" {
		id += "." + strings.ReplaceAll(d.MessageKey, "-", "")
	}
	return id
}

// frequencyCap is the cap in force for a rule: its own, else the default.
// A rule no longer in the rule set gets the default.
func frequencyCap(rs *rules.RuleSet, rule string) *rules.FrequencyCap {
	if r := rs.Rule(rule); r != nil && r.FrequencyCap != nil {
		return r.FrequencyCap
	}
	return rs.Defaults.FrequencyCap
}

// location returns a customer's time zone; UTC when it is empty or unknown.
func (w *dispatcher) location(name string) *time.Location {
	if name == "" {
		return time.UTC
	}
	if loc, ok := w.locations.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = time.UTC
	}
	w.locations.Store(name, loc)
	return loc
}

// templateData gathers what templates and webhook bodies show.
func (w *dispatcher) templateData(dp *store.Dispatch) templates.Data {
	cust := dp.Customer
	data := templates.Data{
		Customer: templates.Customer{ID: cust.ID, Email: cust.Email, Name: cust.Name, Stage: cust.Stage,
			OrdersCount: cust.OrdersCount, TotalSpent: cust.TotalSpent, Attributes: cust.Attributes,
			Points: templates.Points{Balance: dp.Points.Balance, NextExpiry: dp.Points.NextExpiry}, Tier: dp.Points.Tier},
		Rule:           dp.Delivery.Rule,
		StoreName:      w.cfg.StoreName,
		UnsubscribeURL: w.cfg.Unsubscribe.URL(cust.ID, cust.Email),
	}
	if data.StoreName == "" {
		data.StoreName = "our store"
	}
	if ev := dp.Event; ev != nil {
		data.Event = &templates.Event{Type: ev.Type, Properties: ev.Properties, OccurredAt: ev.OccurredAt}
	}
	if c := dp.Coupon; c != nil {
		data.Coupon = &templates.Coupon{Code: c.Code, Kind: c.Kind, Value: c.Value, ExpiresAt: c.ExpiresAt}
	}
	return data
}

// WebhookBody is the JSON a webhook receives.
type WebhookBody struct {
	Type           string          `json:"type"` // always "rule.fired"
	Rule           string          `json:"rule"`
	RuleSetVersion string          `json:"rule_set_version"`
	FiringID       int64           `json:"firing_id"`
	DeliveryID     int64           `json:"delivery_id"`
	Customer       WebhookCustomer `json:"customer"`
	Coupon         *WebhookCoupon  `json:"coupon,omitempty"`
	Event          *WebhookEvent   `json:"event,omitempty"`
	FiredAt        time.Time       `json:"fired_at"`
}

// WebhookCoupon is the firing's coupon as a webhook receives it.
type WebhookCoupon struct {
	Code      string    `json:"code"`
	Kind      string    `json:"kind"` // percent, amount or free_shipping
	Value     float64   `json:"value"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// WebhookEvent is the event that fired the rule as a webhook receives it.
type WebhookEvent struct {
	Type       string         `json:"type"`
	Properties map[string]any `json:"properties"`
	OccurredAt time.Time      `json:"occurred_at"`
}

// WebhookCustomer is the customer as a webhook receives it.
type WebhookCustomer struct {
	ID          string  `json:"id"`
	Email       string  `json:"email"`
	Name        string  `json:"name"`
	Stage       string  `json:"stage"`
	OrdersCount int     `json:"orders_count"`
	TotalSpent  float64 `json:"total_spent"`
}

// NewWebhookBody builds the webhook body for a firing from the same data
// its emails are rendered with.
func NewWebhookBody(rule, version string, firingID, deliveryID int64, data templates.Data, firedAt time.Time) WebhookBody {
	c := data.Customer
	wb := WebhookBody{
		Type: "rule.fired", Rule: rule, RuleSetVersion: version, FiringID: firingID, DeliveryID: deliveryID,
		Customer: WebhookCustomer{ID: c.ID, Email: c.Email, Name: c.Name, Stage: c.Stage,
			OrdersCount: c.OrdersCount, TotalSpent: c.TotalSpent},
		FiredAt: firedAt,
	}
	if cp := data.Coupon; cp != nil {
		wb.Coupon = &WebhookCoupon{Code: cp.Code, Kind: cp.Kind, Value: cp.Value, ExpiresAt: cp.ExpiresAt}
	}
	if ev := data.Event; ev != nil {
		wb.Event = &WebhookEvent{Type: ev.Type, Properties: ev.Properties, OccurredAt: ev.OccurredAt}
	}
	return wb
}

func (w *dispatcher) webhook(rs *rules.RuleSet, dp *store.Dispatch) (*channels.Message, error) {
	d := dp.Delivery
	var a WebhookDelivery
	if err := json.Unmarshal(d.Action, &a); err != nil {
		return nil, undeliverable("decode webhook action: %v", err)
	}
	wb := NewWebhookBody(d.Rule, d.RuleSetVersion, d.FiringID, d.ID, w.templateData(dp), d.CreatedAt)
	body, err := json.Marshal(wb)
	if err != nil {
		return nil, undeliverable("encode webhook body: %v", err)
	}
	secret := w.cfg.WebhookSecret
	if r := rs.Rule(d.Rule); r != nil && a.ActionIndex < len(r.Actions) {
		if wa := r.Actions[a.ActionIndex].Webhook; wa != nil && wa.URL == a.URL && wa.Secret != "" {
			secret = wa.Secret
		}
	}
	if secret == "" {
		return nil, undeliverable("no signing secret for webhook of rule %q: set `secret:` on the action or CICLO_WEBHOOK_SECRET", d.Rule)
	}
	return &channels.Message{ID: "delivery-" + strconv.FormatInt(d.ID, 10), URL: a.URL, Secret: secret, Body: body}, nil
}
