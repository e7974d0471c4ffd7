package worker

import (
	"time"

	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// RuleCustomer is the view of a stored customer that rules evaluate. The
// workers build it, and the read-only tools (rules test, rules diff) use it
// too so they see what the workers see.
func RuleCustomer(c *store.Customer) rules.Customer {
	return rules.Customer{
		ID:             c.ID,
		Email:          c.Email,
		Name:           c.Name,
		Timezone:       c.Timezone,
		Stage:          c.Stage,
		StageEnteredAt: c.StageEnteredAt,
		CreatedAt:      c.CreatedAt,
		LastSeenAt:     c.LastSeenAt,
		FirstOrderAt:   c.FirstOrderAt,
		LastOrderAt:    c.LastOrderAt,
		OrdersCount:    c.OrdersCount,
		TotalSpent:     c.TotalSpent,
		Attributes:     c.Attributes,
		Unsubscribed:   !c.UnsubscribedAt.IsZero(),

		CouponExpiresAt: c.CouponExpiresAt,

		PointsBalance:    int(c.PointsBalance),
		PointsPending:    int(c.PointsPending),
		PointsExpiringAt: c.PointsExpiringAt,
		Tier:             c.Tier,
	}
}

// ruleEvent is the view of a stored event that rules evaluate.
func ruleEvent(e *store.Event) *rules.Event {
	return &rules.Event{Type: e.Type, Properties: e.Properties, OccurredAt: e.OccurredAt}
}

// Clock returns the current time; tests pass a fixed or advancing one.
type Clock func() time.Time
