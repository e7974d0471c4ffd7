package dryrun

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/templates"
)

// previewHistory is how many timeline entries Preview looks through for
// the customer's latest event and coupon.
const previewHistory = 200

// PreviewOptions says what to render.
type PreviewOptions struct {
	// Template is the template name. Required.
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
			Customer: templates.Customer{ID: c.ID, Email: c.Email, Name: c.Name, Stage: c.Stage,
				OrdersCount: c.OrdersCount, TotalSpent: c.TotalSpent, Attributes: c.Attributes},
			Rule: "preview", UnsubscribeURL: PreviewUnsubscribeURL, StoreName: "our store", Now: opts.At,
			Coupon: &templates.Coupon{Code: PreviewCouponCode, Kind: "percent", Value: 10, ExpiresAt: opts.At.Add(14 * 24 * time.Hour)},
		}
		for _, e := range history {
			switch e.Kind {
			case store.TimelineEvent:
				props, _ := e.Detail["properties"].(map[string]any)
				typ, _ := e.Detail["type"].(string)
				data.Event = &templates.Event{Type: typ, Properties: props, OccurredAt: e.At}
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
		return nil, err
	}
	if c.Email == "" {
		return nil, fmt.Errorf("customer %q has no email address", c.ID)
	}
	return &channels.Message{
		ID: "preview", From: opts.From, To: c.Email, ToName: c.Name, Subject: r.Subject, HTML: r.HTML, Text: r.Text,
		Headers: map[string]string{
			"List-Unsubscribe":      "<" + PreviewUnsubscribeURL + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
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
