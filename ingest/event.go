package ingest

import "time"

// Event is one thing a customer did, as a source reports it. Its JSON form
// is the body of POST /v1/events.
type Event struct {
	// CustomerID is the store's id for the customer (required).
	CustomerID string `json:"customer_id"`
	// Type is the event type, e.g. order_placed (required).
	Type string `json:"type"`
	// IdempotencyKey makes a retried event a no-op; a source derives it
	// from its own ids so that a replayed webhook is recognised.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// OccurredAt is when it happened; nil means when it was received.
	OccurredAt *time.Time `json:"occurred_at,omitempty"`
	// Email, Name and Timezone update the customer's contact details when set.
	Email    string `json:"email,omitempty"`
	Name     string `json:"name,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	// Properties are the event's own data (event.properties in rules).
	Properties map[string]any `json:"properties,omitempty"`
	// Attributes are merged into the customer's attributes.
	Attributes map[string]any `json:"attributes,omitempty"`
}
