package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// couponCodeAttempts bounds retries on the (astronomically rare) code collision.
const couponCodeAttempts = 5

// EmailDelivery is the email action stored on a delivery row.
type EmailDelivery struct {
	Template      string `json:"template"`
	Subject       string `json:"subject,omitempty"`
	Transactional bool   `json:"transactional,omitempty"`
}

// WebhookDelivery is the webhook action stored on a delivery row. The
// signing secret is not stored: dispatch takes it from the rule in force.
type WebhookDelivery struct {
	URL         string `json:"url"`
	ActionIndex int    `json:"action_index"`
}

// Firing says what one rule firing did.
type Firing struct {
	Firing     store.Firing
	Transition *store.Transition
	Coupons    []*store.Coupon
	Deliveries []*store.Delivery
}

// FireTx fires rule r for customer c and occurrence in tx: it records the
// firing, moves the stage and logs the transition, issues coupons and queues
// deliveries with their dispatch jobs. It returns nil, and writes nothing,
// when the rule already fired for this occurrence, so retried jobs never
// fire twice. Call it within a transaction that commits everything at once.
func FireTx(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], version string, r *rules.Rule,
	c *store.Customer, occurrence string, eventID int64, now time.Time,
) (*Firing, error) {
	st := store.New(tx)
	res := &Firing{Firing: store.Firing{
		CustomerID: c.ID, Rule: r.Name, Occurrence: occurrence, RuleSetVersion: version,
		EventID: eventID, FiredAt: now, Cooldown: r.Cooldown,
	}}
	fired, err := st.InsertFiring(ctx, &res.Firing)
	if err != nil || !fired {
		return nil, err
	}
	metrics.FromContext(ctx).RuleFired(r.Name)

	var jobs []river.InsertManyParams
	for i, a := range r.Actions {
		switch {
		case a.Stage != "":
			t := &store.Transition{CustomerID: c.ID, To: a.Stage, Rule: r.Name, RuleSetVersion: version,
				FiringID: res.Firing.ID, OccurredAt: now}
			moved, err := st.MoveStage(ctx, t)
			if err != nil {
				return nil, err
			}
			if moved {
				res.Transition = t
				metrics.FromContext(ctx).StageTransition(t.From, t.To)
			}
		case a.Coupon != nil:
			cp, err := issueCoupon(ctx, tx, c.ID, r.Name, res.Firing.ID, a.Coupon, now)
			if err != nil {
				return nil, err
			}
			res.Coupons = append(res.Coupons, cp)
		case a.Email != nil:
			d, err := queueDelivery(ctx, st, &res.Firing, "email", EmailDelivery{
				Template: a.Email.Template, Subject: a.Email.Subject, Transactional: r.Transactional,
			})
			if err != nil {
				return nil, err
			}
			res.Deliveries = append(res.Deliveries, d)
			jobs = append(jobs, dispatchJob(d))
		case a.Webhook != nil:
			d, err := queueDelivery(ctx, st, &res.Firing, "webhook", WebhookDelivery{URL: a.Webhook.URL, ActionIndex: i})
			if err != nil {
				return nil, err
			}
			res.Deliveries = append(res.Deliveries, d)
			jobs = append(jobs, dispatchJob(d))
		}
	}
	if len(jobs) > 0 {
		if _, err := client.InsertManyTx(ctx, tx, jobs); err != nil {
			return nil, fmt.Errorf("enqueue dispatch of %q: %w", r.Name, err)
		}
	}
	return res, nil
}

// dispatchJob is the River insert for one queued delivery.
func dispatchJob(d *store.Delivery) river.InsertManyParams {
	return river.InsertManyParams{Args: DispatchArgs{CustomerID: d.CustomerID, DeliveryID: d.ID, Channel: d.Channel}}
}

func queueDelivery(ctx context.Context, st *store.Store, f *store.Firing, channel string, action any) (*store.Delivery, error) {
	raw, err := json.Marshal(action)
	if err != nil {
		return nil, fmt.Errorf("encode %s action: %w", channel, err)
	}
	d := &store.Delivery{CustomerID: f.CustomerID, FiringID: f.ID, Rule: f.Rule, Channel: channel,
		Action: raw, Status: store.DeliveryQueued, CreatedAt: f.FiredAt}
	if err := st.InsertDelivery(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}

// issueCoupon stores a coupon with a fresh code, drawing again on the
// (astronomically rare) collision.
func issueCoupon(ctx context.Context, tx pgx.Tx, customerID, rule string, firingID int64, a *rules.CouponAction, now time.Time) (*store.Coupon, error) {
	c := &store.Coupon{CustomerID: customerID, Rule: rule, FiringID: firingID, Kind: a.Kind, Value: a.Value, CreatedAt: now}
	if a.ExpiresIn > 0 {
		c.ExpiresAt = now.Add(a.ExpiresIn)
	}
	st := store.New(tx)
	for range couponCodeAttempts {
		c.Code = NewCouponCode()
		err := st.InsertCoupon(ctx, c)
		if errors.Is(err, store.ErrCouponCodeTaken) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("issue coupon for %q: %d code collisions in a row", customerID, couponCodeAttempts)
}
