package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

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

// capClaimTTL is how long a delivery claimed under the frequency cap counts
// as in flight. It only matters when a worker dies mid-send: the claim of a
// finished attempt is cleared when its outcome is recorded.
const capClaimTTL = 10 * time.Minute

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

// DispatchWorker sends one delivery through its channel and records the
// outcome on the delivery row.
type DispatchWorker struct {
	river.WorkerDefaults[DispatchArgs]

	cfg    *DispatchConfig
	pool   *pgxpool.Pool
	rules  *RuleSetHolder
	now    Clock
	logger *slog.Logger

	locations sync.Map // time zone name → *time.Location
}

// Work sends a queued delivery. A delivery no longer queued is done already
// (a retry after a crash between send and job completion) and is skipped.
// Permanent failures are recorded and cancel the job; transient ones are
// recorded and retried with backoff until the last attempt.
func (w *DispatchWorker) Work(ctx context.Context, job *river.Job[DispatchArgs]) error {
	st := store.New(w.pool)
	dp, err := st.GetDispatch(ctx, job.Args.CustomerID, job.Args.DeliveryID)
	if errors.Is(err, store.ErrDeliveryNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	d := dp.Delivery
	if d.Status != store.DeliveryQueued {
		return nil
	}

	var (
		msg *channels.Message
		ch  channels.Channel
	)
	switch d.Channel {
	case "email":
		ch = w.cfg.Email
		msg, err = w.email(ctx, st, dp)
	case "webhook":
		ch = w.cfg.Webhook
		msg, err = w.webhook(dp)
	default:
		err = undeliverable("unknown channel %q", d.Channel)
	}
	if ue := (*undeliverableError)(nil); errors.As(err, &ue) {
		// Rendering and configuration errors do not heal by retrying.
		if ferr := finishDelivery(ctx, st, dp, store.Outcome{Status: store.DeliveryFailed, Error: err.Error(), At: w.now()}); ferr != nil {
			return ferr
		}
		return river.JobCancel(err)
	}
	if err != nil || msg == nil {
		return err // a database error to retry, a snooze, or done without sending
	}

	res, sendErr := ch.Send(ctx, msg)
	// Record the outcome even if the job's context ended meanwhile (shutdown,
	// timeout): a sent email left "queued" would be sent again.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	return w.record(rctx, st, job, dp, res, sendErr)
}

// record stores a send's outcome and tells River what to do next.
func (w *DispatchWorker) record(ctx context.Context, st *store.Store, job *river.Job[DispatchArgs], dp *store.Dispatch,
	res channels.Result, sendErr error,
) error {
	d, cust := dp.Delivery, dp.Customer
	out := store.Outcome{Attempted: true, ProviderID: res.ProviderID, ResponseCode: res.StatusCode, Response: res.Response, At: w.now()}
	if sendErr == nil {
		out.Status = store.DeliverySent
		return finishDelivery(ctx, st, dp, out)
	}
	out.Error = sendErr.Error()
	var se *channels.SendError
	if errors.As(sendErr, &se) && se.Code != 0 {
		out.ResponseCode = se.Code
	}
	permanent := channels.IsPermanent(sendErr)
	last := job.Attempt >= job.MaxAttempts
	if !permanent && !last {
		out.Status = store.DeliveryQueued
		if err := finishDelivery(ctx, st, dp, out); err != nil {
			return err
		}
		return fmt.Errorf("send %s delivery %d: %w", d.Channel, d.ID, sendErr)
	}
	out.Status = store.DeliveryFailed
	if err := finishDelivery(ctx, st, dp, out); err != nil {
		return err
	}
	// Only a refused recipient is a hard bounce: a 5xx to MAIL FROM or DATA
	// (bad credentials, sender policy, content) would otherwise suppress
	// every customer the misconfigured relay turned away.
	if permanent && d.Channel == "email" && se != nil && se.Recipient && cust.Email != "" {
		if err := st.AddSuppression(ctx, cust.Email, store.SuppressBounced, out.Error, out.At); err != nil {
			return err
		}
	}
	w.logger.WarnContext(ctx, "dispatch: delivery failed", slog.Int64("delivery_id", d.ID),
		slog.String("channel", d.Channel), slog.String("rule", d.Rule), slog.Bool("permanent", permanent),
		slog.Int("attempt", job.Attempt), slog.String("error", out.Error))
	return river.JobCancel(sendErr)
}

// finishDelivery records a delivery attempt's outcome and notes it for the
// job metrics middleware, which then need not read it back.
func finishDelivery(ctx context.Context, st *store.Store, dp *store.Dispatch, o store.Outcome) error {
	if err := st.FinishDelivery(ctx, dp.Delivery.CustomerID, dp.Delivery.ID, o); err != nil {
		return err
	}
	noteOutcome(ctx, &store.DeliveryOutcome{Status: o.Status, SentAt: o.At, OriginAt: dp.OriginAt})
	return nil
}

// email prepares an email delivery. It returns the message to send; or a nil
// message and a nil error when the delivery was recorded as suppressed or
// skipped_cap; or a river.JobSnooze during quiet hours; or an
// *undeliverableError when it can never be sent. Checks run in this order:
// suppression and unsubscribe, quiet hours, rendering, frequency cap.
// Transactional deliveries skip all but the bounce check.
func (w *DispatchWorker) email(ctx context.Context, st *store.Store, dp *store.Dispatch) (*channels.Message, error) {
	d, cust := dp.Delivery, dp.Customer
	var a EmailDelivery
	if err := json.Unmarshal(d.Action, &a); err != nil {
		return nil, undeliverable("decode email action: %v", err)
	}
	if cust.Email == "" {
		return nil, undeliverable("customer has no email address")
	}
	now := w.now()
	done := func(status, reason string) (*channels.Message, error) {
		return nil, finishDelivery(ctx, st, dp, store.Outcome{Status: status, Error: reason, At: now})
	}
	reason := dp.Suppressed
	switch {
	case reason == store.SuppressBounced:
		return done(store.DeliverySuppressed, "address bounced")
	case a.Transactional:
		// Transactional mail (receipts, coupon codes asked for) still goes
		// to unsubscribed customers, never to bounced addresses.
	case reason != "":
		return done(store.DeliverySuppressed, "address suppressed: "+reason)
	case !cust.UnsubscribedAt.IsZero():
		return done(store.DeliverySuppressed, "customer unsubscribed")
	}

	rs := w.rules.Load()
	if qh := rs.Defaults.QuietHours; qh != nil && !a.Transactional {
		local := now.In(w.location(cust.Timezone))
		if qh.Contains(local) {
			wait := max(qh.NextOpen(local).Sub(local), time.Second)
			w.logger.DebugContext(ctx, "dispatch: quiet hours, snoozing", slog.Int64("delivery_id", d.ID),
				slog.String("customer_id", d.CustomerID), slog.Duration("wait", wait))
			return nil, river.JobSnooze(wait)
		}
	}

	data := w.templateData(dp)
	r, err := w.cfg.Templates.Render(a.Template, a.Subject, data)
	if err != nil {
		return nil, undeliverable("render template %q: %v", a.Template, err)
	}

	if fc := frequencyCap(rs, d.Rule); fc != nil && !a.Transactional {
		n, ok, err := st.ClaimUnderCap(ctx, d.CustomerID, d.ID, store.Cap{
			Max: fc.Max, Since: now.Add(-fc.Per), StaleBefore: now.Add(-capClaimTTL), Now: now,
		})
		if err != nil {
			return nil, err
		}
		if !ok {
			return done(store.DeliverySkippedCap, fmt.Sprintf("frequency cap: %d marketing emails in the last %s (max %d)", n, fc.Per, fc.Max))
		}
	}

	list := "<" + data.UnsubscribeURL + ">"
	if w.cfg.UnsubscribeMailto != "" {
		list += ", <mailto:" + w.cfg.UnsubscribeMailto + "?subject=unsubscribe>"
	}
	return &channels.Message{
		ID:      "delivery-" + strconv.FormatInt(d.ID, 10),
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
	}, nil
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
func (w *DispatchWorker) location(name string) *time.Location {
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
func (w *DispatchWorker) templateData(dp *store.Dispatch) templates.Data {
	cust := dp.Customer
	data := templates.Data{
		Customer: templates.Customer{ID: cust.ID, Email: cust.Email, Name: cust.Name, Stage: cust.Stage,
			OrdersCount: cust.OrdersCount, TotalSpent: cust.TotalSpent, Attributes: cust.Attributes},
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

func (w *DispatchWorker) webhook(dp *store.Dispatch) (*channels.Message, error) {
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
	if r := w.rules.Load().Rule(d.Rule); r != nil && a.ActionIndex < len(r.Actions) {
		if wa := r.Actions[a.ActionIndex].Webhook; wa != nil && wa.URL == a.URL && wa.Secret != "" {
			secret = wa.Secret
		}
	}
	if secret == "" {
		return nil, undeliverable("no signing secret for webhook of rule %q: set `secret:` on the action or CICLO_WEBHOOK_SECRET", d.Rule)
	}
	return &channels.Message{ID: "delivery-" + strconv.FormatInt(d.ID, 10), URL: a.URL, Secret: secret, Body: body}, nil
}
