package store

import "github.com/ciclohq/ciclo/rules"

// RuleCustomer is the view of a stored customer that rules evaluate. The
// workers build it, and the read-only tools (rules test, rules diff, the
// dry run) use it too, so they see what the workers see.
func RuleCustomer(c *Customer) rules.Customer {
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
