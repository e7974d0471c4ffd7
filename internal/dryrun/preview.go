package dryrun

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/message"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/templates"
)

// previewHistory is how many timeline entries Preview looks through for
// the customer's latest event and coupon.
const previewHistory = 200

// PreviewOptions says what to render: a template, or what a rule sends.
type PreviewOptions struct {
	// Rule, optional, previews what this rule would send: the template and
	// subject of its first email action, its coupon as it would be issued
	// (a freshly drawn sample code, the action's kind, value and expiry
	// from At), the customer's latest event of the rule's type (none for a
	// scheduled rule). Template and Subject then only override.
	Rule *rules.Rule
	// Template is the template name. Required unless Rule is set.
	Template string
	// Subject overrides the template's default subject, as an email
	// action's subject: does.
	Subject string
	// CustomerID is the recipient. Required.
	CustomerID string
	// From is the sender shown in the message. Default "ciclo <ciclo@localhost>".
	From string
	// At is the rendering time. Default time.Now.
	At time.Time
}

// Preview renders an email for a customer of the live database, read-only:
// with their latest event and latest coupon when they have them (a
// placeholder coupon otherwise) and a placeholder unsubscribe link. The
// message is what the email channel would send; nothing is sent.
func Preview(ctx context.Context, pool *pgxpool.Pool, tset *templates.Set, opts PreviewOptions) (*channels.Message, error) {
	if opts.At.IsZero() {
		opts.At = time.Now()
	}
	if opts.From == "" {
		opts.From = "ciclo <ciclo@localhost>"
	}
	if r := opts.Rule; r != nil {
		email := firstEmail(r)
		if email == nil {
			return nil, fmt.Errorf("rule %q sends no email: nothing to preview", r.Name)
		}
		if opts.Template == "" {
			opts.Template = email.Template
		}
		if opts.Subject == "" {
			opts.Subject = email.Subject
		}
	}
	var data templates.Data
	var c *store.Customer
	err := ReadOnly(ctx, pool, func(st *store.Store) error {
		var err error
		if c, err = st.GetCustomer(ctx, opts.CustomerID); err != nil {
			return err
		}
		history, err := st.Timeline(ctx, opts.CustomerID, previewHistory)
		if err != nil {
			return err
		}
		data = templates.Data{
			Customer: message.Customer(c),
			Rule:     "preview", UnsubscribeURL: PreviewUnsubscribeURL, StoreName: message.DefaultStoreName, Now: opts.At,
			Coupon: &templates.Coupon{Code: PreviewCouponCode, Kind: "percent", Value: 10, ExpiresAt: opts.At.Add(14 * 24 * time.Hour)},
		}
		if opts.Rule != nil {
			data.Rule = opts.Rule.Name
			data.Event, data.Coupon = ruleEventAndCoupon(opts.Rule, history, opts.At)
			return nil
		}
		for _, e := range history {
			switch e.Kind {
			case store.TimelineEvent:
				data.Event = eventFromEntry(e)
			case store.TimelineCoupon:
				data.Coupon = couponFromDetail(e.Detail)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r, err := tset.Render(opts.Template, opts.Subject, data)
	if err != nil {
		if opts.Rule != nil {
			return nil, fmt.Errorf("rule %q: %w", opts.Rule.Name, err)
		}
		return nil, err
	}
	if c.Email == "" {
		return nil, fmt.Errorf("customer %q has no email address", c.ID)
	}
	return &channels.Message{
		ID: "preview", From: opts.From, To: c.Email, ToName: c.Name, Subject: r.Subject, HTML: r.HTML, Text: r.Text,
		Headers: message.EmailHeaders(PreviewUnsubscribeURL, ""),
	}, nil
}

// couponFromDetail reads a coupon timeline entry's detail.
func couponFromDetail(d map[string]any) *templates.Coupon {
	c := &templates.Coupon{}
	c.Code, _ = d["code"].(string)
	c.Kind, _ = d["kind"].(string)
	c.Value, _ = d["value"].(float64)
	if s, ok := d["expires_at"].(string); ok {
		c.ExpiresAt, _ = time.Parse(time.RFC3339Nano, s)
	}
	return c
}

// firstEmail returns r's first email action, or nil.
func firstEmail(r *rules.Rule) *rules.EmailAction {
	for _, a := range r.Actions {
		if a.Email != nil {
			return a.Email
		}
	}
	return nil
}

// ruleEventAndCoupon returns what dispatch would render r's email with,
// from the customer's history (oldest first): the latest event of r's type
// (an empty one of that type when there is none; nil for a scheduled rule)
// and the coupon r issues, with a sample code, as issued at now. A rule
// that issues none but reads customer.coupon_expires_at is sent with the
// customer's unredeemed coupon that expires first; any other gets none.
func ruleEventAndCoupon(r *rules.Rule, history []*store.TimelineEntry, now time.Time) (*templates.Event, *templates.Coupon) {
	var ev *templates.Event
	if r.On != "" {
		ev = &templates.Event{Type: r.On, Properties: map[string]any{}, OccurredAt: now}
		for _, e := range history {
			if e.Kind == store.TimelineEvent && e.Detail["type"] == r.On {
				ev = eventFromEntry(e)
			}
		}
	}
	for _, a := range r.Actions {
		if a.Coupon != nil {
			c := &templates.Coupon{Code: store.NewCouponCode(), Kind: a.Coupon.Kind, Value: a.Coupon.Value}
			if a.Coupon.ExpiresIn > 0 {
				c.ExpiresAt = now.Add(a.Coupon.ExpiresIn)
			}
			return ev, c
		}
	}
	if !slices.Contains(r.Fields, "coupon_expires_at") {
		return ev, nil
	}
	var first *templates.Coupon
	for _, e := range history {
		if e.Kind != store.TimelineCoupon || e.Detail["redeemed_at"] != nil {
			continue
		}
		c := couponFromDetail(e.Detail)
		if c.ExpiresAt.IsZero() || c.ExpiresAt.Before(now) {
			continue
		}
		if first == nil || c.ExpiresAt.Before(first.ExpiresAt) {
			first = c
		}
	}
	return ev, first
}

// eventFromEntry reads an event timeline entry.
func eventFromEntry(e *store.TimelineEntry) *templates.Event {
	props, _ := e.Detail["properties"].(map[string]any)
	typ, _ := e.Detail["type"].(string)
	return &templates.Event{Type: typ, Properties: props, OccurredAt: e.At}
}
