package message

import (
	"time"

	"github.com/ciclohq/ciclo/templates"
)

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
