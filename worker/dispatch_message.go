package worker

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/message"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/templates"
)

// email prepares an email delivery: it sets the message to send and the
// frequency cap that applies; or the outcome when the delivery is
// suppressed; or a snooze during quiet hours. It returns an
// *undeliverableError when the delivery can never be sent. Checks run in
// this order: suppression and unsubscribe, quiet hours, rendering; the
// frequency cap is claimed later for the whole job. Transactional
// deliveries skip all but the bounce check.
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
		return suppressed(erasedReason)
	case reason == store.SuppressBounced:
		return suppressed("address bounced")
	case a.Transactional:
		// Transactional mail (receipts, coupon codes asked for) still goes
		// to unsubscribed customers, never to bounced addresses.
	case reason != "":
		return suppressed("address suppressed: " + reason)
	case !cust.UnsubscribedAt.IsZero():
		return suppressed("customer unsubscribed")
	case cust.Attributes[store.ConsentAttribute] == false:
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
	s.msg = &channels.Message{
		ID:      message.EmailID(d),
		From:    w.cfg.From,
		To:      cust.Email,
		ToName:  cust.Name,
		Subject: r.Subject,
		HTML:    r.HTML,
		Text:    r.Text,
		Headers: message.EmailHeaders(data.UnsubscribeURL, w.cfg.UnsubscribeMailto),
	}
	return nil
}

// erasedReason is the error a delivery to an erased address is suppressed with.
const erasedReason = "address erased at the person's request"

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
	return message.Data(dp, w.cfg.StoreName, w.cfg.Unsubscribe.URL(dp.Customer.ID, dp.Customer.Email))
}

func (w *dispatcher) webhook(rs *rules.RuleSet, dp *store.Dispatch) (*channels.Message, error) {
	d := dp.Delivery
	var a WebhookDelivery
	if err := json.Unmarshal(d.Action, &a); err != nil {
		return nil, undeliverable("decode webhook action: %v", err)
	}
	wb := message.NewWebhookBody(d.Rule, d.RuleSetVersion, d.FiringID, d.ID, w.templateData(dp), d.CreatedAt)
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
	return &channels.Message{ID: message.WebhookID(d), URL: a.URL, Secret: secret, Body: body}, nil
}
