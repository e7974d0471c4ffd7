package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	res, err := fire(ctx, tx, version, r, c, occurrence, eventID, now)
	if err != nil || res == nil {
		return nil, err
	}
	if err := insertDispatchJobs(ctx, tx, client, res.Deliveries); err != nil {
		return nil, fmt.Errorf("enqueue dispatch of %q: %w", r.Name, err)
	}
	return res, nil
}

// insertDispatchJobs enqueues the dispatch jobs of queued deliveries.
func insertDispatchJobs(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], ds []*store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	_, err := client.InsertManyTx(ctx, tx, dispatchJobs(ds))
	return err
}

// fire is FireTx without the dispatch jobs, which the caller enqueues (the
// evaluate worker enqueues those of all its firings at once). A rule with
// at most one stage action, the usual shape, is written in one statement
// (store.Fire); others go action by action.
func fire(ctx context.Context, tx pgx.Tx, version string, r *rules.Rule,
	c *store.Customer, occurrence string, eventID int64, now time.Time,
) (*Firing, error) {
	st := store.New(tx)
	f := &store.Fire{Firing: store.Firing{
		CustomerID: c.ID, Rule: r.Name, Occurrence: occurrence, RuleSetVersion: version,
		EventID: eventID, FiredAt: now, Cooldown: r.Cooldown,
	}}
	stages := 0
	for i, a := range r.Actions {
		switch {
		case a.Stage != "":
			stages++
			f.Stage = a.Stage
		case a.Coupon != nil:
			f.Coupons = append(f.Coupons, newCoupon(c.ID, r.Name, a.Coupon, now))
		default:
			channel, action, ok := deliveryAction(r, i)
			if !ok {
				continue
			}
			d, err := actionDelivery(c.ID, r.Name, channel, action, now)
			if err != nil {
				return nil, err
			}
			f.Deliveries = append(f.Deliveries, d)
		}
	}
	if stages > 1 {
		return fireByAction(ctx, st, r, f.Firing)
	}
	fired, ok, err := st.Fire(ctx, f)
	if err != nil || !ok {
		return nil, err
	}
	metrics.FromContext(ctx).RuleFired(r.Name)
	res := &Firing{Firing: f.Firing, Transition: fired.Transition, Coupons: f.Coupons, Deliveries: f.Deliveries}
	if t := fired.Transition; t != nil {
		metrics.FromContext(ctx).StageTransition(t.From, t.To)
	}
	for _, cp := range fired.CodesTaken {
		cp.Code = NewCouponCode()
		if err := insertCoupon(ctx, st, cp); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// fireByAction is fire one statement per action, for rules with several
// stage actions (each logs its own transition).
func fireByAction(ctx context.Context, st *store.Store, r *rules.Rule, firing store.Firing) (*Firing, error) {
	res := &Firing{Firing: firing}
	fired, err := st.InsertFiring(ctx, &res.Firing)
	if err != nil || !fired {
		return nil, err
	}
	metrics.FromContext(ctx).RuleFired(r.Name)

	f := &res.Firing
	for i, a := range r.Actions {
		switch {
		case a.Stage != "":
			t := &store.Transition{CustomerID: f.CustomerID, To: a.Stage, Rule: r.Name, RuleSetVersion: f.RuleSetVersion,
				FiringID: f.ID, OccurredAt: f.FiredAt}
			moved, err := st.MoveStage(ctx, t)
			if err != nil {
				return nil, err
			}
			if moved {
				res.Transition = t
				metrics.FromContext(ctx).StageTransition(t.From, t.To)
			}
		case a.Coupon != nil:
			cp := newCoupon(f.CustomerID, r.Name, a.Coupon, f.FiredAt)
			cp.FiringID = f.ID
			if err := insertCoupon(ctx, st, cp); err != nil {
				return nil, err
			}
			res.Coupons = append(res.Coupons, cp)
		default:
			channel, action, ok := deliveryAction(r, i)
			if !ok {
				continue
			}
			d, err := queueDelivery(ctx, st, f, channel, action)
			if err != nil {
				return nil, err
			}
			res.Deliveries = append(res.Deliveries, d)
		}
	}
	return res, nil
}

// deliveryAction is the channel and the action a delivery row stores for
// action i of rule r; ok is false when that action is not an email or a
// webhook.
func deliveryAction(r *rules.Rule, i int) (channel string, action any, ok bool) {
	switch a := r.Actions[i]; {
	case a.Email != nil:
		return "email", EmailDelivery{Template: a.Email.Template, Subject: a.Email.Subject, Transactional: r.Transactional}, true
	case a.Webhook != nil:
		return "webhook", WebhookDelivery{URL: a.Webhook.URL, ActionIndex: i}, true
	}
	return "", nil, false
}

// dispatchJobs are the River inserts for queued deliveries: per channel, a
// DispatchBatchArgs job for each DispatchBatchSize deliveries, or a
// DispatchArgs job for a delivery on its own.
func dispatchJobs(ds []*store.Delivery) []river.InsertManyParams {
	byChannel := map[string][]DeliveryRef{}
	var order []string
	for _, d := range ds {
		if _, ok := byChannel[d.Channel]; !ok {
			order = append(order, d.Channel)
		}
		byChannel[d.Channel] = append(byChannel[d.Channel], DeliveryRef{CustomerID: d.CustomerID, ID: d.ID})
	}
	var jobs []river.InsertManyParams
	for _, ch := range order {
		for refs := range slices.Chunk(byChannel[ch], DispatchBatchSize) {
			if len(refs) == 1 {
				jobs = append(jobs, river.InsertManyParams{Args: DispatchArgs{CustomerID: refs[0].CustomerID, DeliveryID: refs[0].ID, Channel: ch}})
				continue
			}
			jobs = append(jobs, river.InsertManyParams{Args: DispatchBatchArgs{Channel: ch, Deliveries: refs}})
		}
	}
	return jobs
}

// actionDelivery is a queued delivery of action, not stored yet.
func actionDelivery(customerID, rule, channel string, action any, now time.Time) (*store.Delivery, error) {
	raw, err := json.Marshal(action)
	if err != nil {
		return nil, fmt.Errorf("encode %s action: %w", channel, err)
	}
	return &store.Delivery{CustomerID: customerID, Rule: rule, Channel: channel,
		Action: raw, Status: store.DeliveryQueued, CreatedAt: now}, nil
}

func queueDelivery(ctx context.Context, st *store.Store, f *store.Firing, channel string, action any) (*store.Delivery, error) {
	d, err := actionDelivery(f.CustomerID, f.Rule, channel, action, f.FiredAt)
	if err != nil {
		return nil, err
	}
	d.FiringID = f.ID
	if err := st.InsertDelivery(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}

// newCoupon is a coupon of action a with a fresh code, not stored yet.
func newCoupon(customerID, rule string, a *rules.CouponAction, now time.Time) *store.Coupon {
	c := &store.Coupon{Code: NewCouponCode(), CustomerID: customerID, Rule: rule, Kind: a.Kind, Value: a.Value, CreatedAt: now}
	if a.ExpiresIn > 0 {
		c.ExpiresAt = now.Add(a.ExpiresIn)
	}
	return c
}

// insertCoupon stores c, drawing a new code on the (astronomically rare)
// collision.
func insertCoupon(ctx context.Context, st *store.Store, c *store.Coupon) error {
	for range couponCodeAttempts {
		err := st.InsertCoupon(ctx, c)
		if !errors.Is(err, store.ErrCouponCodeTaken) {
			return err
		}
		c.Code = NewCouponCode()
	}
	return fmt.Errorf("issue coupon for %q: %d code collisions in a row", c.CustomerID, couponCodeAttempts)
}
