// Package shopify verifies Shopify webhook deliveries and maps their
// payloads to ingest events. It has no SQL and no HTTP server: the server's
// route calls Verify, then Map, then ingests what Map returns.
//
// Shopify's topics and payloads: https://shopify.dev/docs/api/webhooks
// (orders/create, orders/paid, orders/cancelled, refunds/create,
// customers/create, customers/update,
// customers_email_marketing_consent/update).
package shopify

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/integrations/hmacsig"
	"github.com/ciclohq/ciclo/money"
	"github.com/ciclohq/ciclo/store"
)

// Headers Shopify sets on every webhook delivery.
const (
	HeaderHmac        = "X-Shopify-Hmac-Sha256"
	HeaderTopic       = "X-Shopify-Topic"
	HeaderEventID     = "X-Shopify-Event-Id"
	HeaderWebhookID   = "X-Shopify-Webhook-Id"
	HeaderTriggeredAt = "X-Shopify-Triggered-At"
	HeaderShopDomain  = "X-Shopify-Shop-Domain"
)

// Event types the Shopify topics map to, besides the order events
// (store.EventOrderPlaced, …).
const (
	EventSignedUp        = "signed_up"
	EventCustomerUpdated = "customer_updated"
	EventConsentUpdated  = "marketing_consent_updated"
)

// Source is the properties.source of every event this package makes.
const Source = "shopify"

var (
	// ErrNoSignature is returned by Verify when the delivery has no
	// X-Shopify-Hmac-Sha256 header.
	ErrNoSignature = errors.New("shopify: missing " + HeaderHmac + " header")
	// ErrBadSignature is returned by Verify when no configured secret
	// produces the delivery's signature.
	ErrBadSignature = errors.New("shopify: " + HeaderHmac + " does not match the body for any configured secret")
	// ErrNoSecret is returned by Verify when no secret is configured.
	ErrNoSecret = errors.New("shopify: no secret configured: set CICLO_SHOPIFY_SECRET to the app's client secret")
)

// Delivery is what the headers of one webhook delivery say.
type Delivery struct {
	// Topic is X-Shopify-Topic, e.g. orders/create.
	Topic string
	// EventID is X-Shopify-Event-Id: the same for one event delivered by
	// several webhooks or retried.
	EventID string
	// WebhookID is X-Shopify-Webhook-Id: one per delivery attempt's webhook.
	WebhookID string
	// Shop is X-Shopify-Shop-Domain.
	Shop string
	// TriggeredAt is X-Shopify-Triggered-At; zero when absent or unreadable.
	TriggeredAt time.Time
}

// Result is what one delivery maps to.
type Result struct {
	// Events to ingest, in order. Empty when the delivery is ignored.
	Events []ingest.Event
	// CustomerOfOrder, when set, is the idempotency key of an order's
	// order_placed event: the events' CustomerID is empty (refunds carry no
	// customer) and the caller fills it in from that stored event.
	CustomerOfOrder string
	// Ignored says why nothing is ingested (unknown topic, guest order),
	// for a debug log line; empty when Events holds something.
	Ignored string
}

// Verify checks signature (the base64 X-Shopify-Hmac-Sha256 header) against
// HMAC-SHA256 of the raw body under each secret, in constant time, so that
// a rotated secret and its successor both verify. Call it before parsing.
func Verify(body []byte, signature string, secrets []string) error {
	switch err := hmacsig.Verify(body, signature, secrets); {
	case errors.Is(err, hmacsig.ErrNoSecret):
		return ErrNoSecret
	case errors.Is(err, hmacsig.ErrMissing):
		return ErrNoSignature
	case err != nil:
		return ErrBadSignature
	}
	return nil
}

// Sign returns the X-Shopify-Hmac-Sha256 value for body under secret, as
// Shopify computes it; tests and local tools use it to send deliveries.
func Sign(body []byte, secret string) string {
	return hmacsig.Sign(body, secret)
}

// ReadDelivery reads a delivery's headers.
func ReadDelivery(h http.Header) Delivery {
	d := Delivery{
		Topic:     strings.TrimSpace(h.Get(HeaderTopic)),
		EventID:   strings.TrimSpace(h.Get(HeaderEventID)),
		WebhookID: strings.TrimSpace(h.Get(HeaderWebhookID)),
		Shop:      strings.TrimSpace(h.Get(HeaderShopDomain)),
	}
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(h.Get(HeaderTriggeredAt))); err == nil {
		d.TriggeredAt = t
	}
	return d
}

// Map turns a verified delivery's body into events. An unknown topic or an
// order without a customer is not an error: the Result says it is ignored.
// A body that does not parse as the topic's payload is an error naming the
// field.
func Map(d Delivery, body []byte) (Result, error) {
	switch d.Topic {
	case "orders/create", "orders/paid":
		return mapOrder(body, store.EventOrderPlaced)
	case "orders/cancelled":
		return mapOrder(body, store.EventOrderCancelled)
	case "refunds/create":
		return mapRefund(body)
	case "customers/create":
		return mapCustomer(d, body, EventSignedUp)
	case "customers/update":
		return mapCustomer(d, body, EventCustomerUpdated)
	case "customers_email_marketing_consent/update":
		return mapConsent(d, body)
	}
	return Result{Ignored: fmt.Sprintf("topic %q is not one ciclo maps", d.Topic)}, nil
}

// OrderKey is the idempotency key of the order_placed event of a Shopify
// order, shared by orders/create and orders/paid so an order counts once.
func OrderKey(orderID int64) string {
	return "shopify:order:" + strconv.FormatInt(orderID, 10) + ":placed"
}

type customer struct {
	ID        int64  `json:"id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	State     string `json:"state"`
	Tags      string `json:"tags"`
	Currency  string `json:"currency"`
	Phone     string `json:"phone"`
}

func (c *customer) name() string {
	return strings.TrimSpace(c.FirstName + " " + c.LastName)
}

type order struct {
	ID              int64     `json:"id"`
	Number          int64     `json:"number"`
	OrderNumber     int64     `json:"order_number"`
	Name            string    `json:"name"`
	Email           string    `json:"email"`
	CreatedAt       string    `json:"created_at"`
	ProcessedAt     string    `json:"processed_at"`
	CancelledAt     string    `json:"cancelled_at"`
	CancelReason    string    `json:"cancel_reason"`
	TotalPrice      string    `json:"total_price"`
	Currency        string    `json:"currency"`
	FinancialStatus string    `json:"financial_status"`
	Test            bool      `json:"test"`
	Customer        *customer `json:"customer"`
	DiscountCodes   []struct {
		Code string `json:"code"`
	} `json:"discount_codes"`
	LineItems []struct {
		Quantity int64 `json:"quantity"`
	} `json:"line_items"`
}

func mapOrder(body []byte, typ string) (Result, error) {
	var o order
	if err := decode(body, &o); err != nil {
		return Result{}, err
	}
	if o.ID == 0 {
		return Result{}, errors.New("shopify order: field id is missing")
	}
	if o.Customer == nil || o.Customer.ID == 0 {
		return Result{Ignored: fmt.Sprintf("order %d has no customer (a guest or draft order)", o.ID)}, nil
	}
	total, err := money.ParseMinor(orZero(o.TotalPrice), o.Currency)
	if err != nil {
		return Result{}, fmt.Errorf("shopify order %d: total_price: %w", o.ID, err)
	}
	number := o.OrderNumber
	if number == 0 {
		number = o.Number
	}
	codes := make([]any, 0, len(o.DiscountCodes))
	for _, dc := range o.DiscountCodes {
		if c := strings.TrimSpace(dc.Code); c != "" {
			codes = append(codes, c)
		}
	}
	var quantity int64
	for _, li := range o.LineItems {
		quantity += li.Quantity
	}
	props := map[string]any{
		"source":         Source,
		"order_id":       strconv.FormatInt(o.ID, 10),
		"order_number":   number,
		"total":          money.Major(total, o.Currency),
		"total_minor":    total,
		"currency":       o.Currency,
		"line_items":     len(o.LineItems),
		"items_quantity": quantity,
		"discount_codes": codes,
		"test":           o.Test,
	}
	if o.FinancialStatus != "" {
		props["financial_status"] = o.FinancialStatus
	}
	e := ingest.Event{
		CustomerID: strconv.FormatInt(o.Customer.ID, 10),
		Type:       typ,
		Email:      firstNonEmpty(o.Customer.Email, o.Email),
		Name:       o.Customer.name(),
		Properties: props,
	}
	at := o.ProcessedAt
	switch typ {
	case store.EventOrderPlaced:
		e.IdempotencyKey = OrderKey(o.ID)
		at = firstNonEmpty(o.ProcessedAt, o.CreatedAt)
	case store.EventOrderCancelled:
		e.IdempotencyKey = "shopify:order:" + strconv.FormatInt(o.ID, 10) + ":cancelled"
		at = o.CancelledAt
		if o.CancelReason != "" {
			props["reason"] = o.CancelReason
		}
	}
	if err := setTime(&e, at); err != nil {
		return Result{}, fmt.Errorf("shopify order %d: %w", o.ID, err)
	}
	return Result{Events: []ingest.Event{e}}, nil
}

type refund struct {
	ID           int64  `json:"id"`
	OrderID      int64  `json:"order_id"`
	CreatedAt    string `json:"created_at"`
	ProcessedAt  string `json:"processed_at"`
	Transactions []struct {
		Amount   string `json:"amount"`
		Currency string `json:"currency"`
		Kind     string `json:"kind"`
		Status   string `json:"status"`
	} `json:"transactions"`
}

func mapRefund(body []byte) (Result, error) {
	var r refund
	if err := decode(body, &r); err != nil {
		return Result{}, err
	}
	if r.ID == 0 || r.OrderID == 0 {
		return Result{}, errors.New("shopify refund: fields id and order_id are required")
	}
	var amount int64
	currency := ""
	for i, tx := range r.Transactions {
		if tx.Kind != "refund" || (tx.Status != "" && tx.Status != "success") {
			continue
		}
		minor, err := money.ParseMinor(tx.Amount, tx.Currency)
		if err != nil {
			return Result{}, fmt.Errorf("shopify refund %d: transactions[%d].amount: %w", r.ID, i, err)
		}
		amount += minor
		currency = tx.Currency
	}
	props := map[string]any{
		"source":       Source,
		"order_id":     strconv.FormatInt(r.OrderID, 10),
		"refund_id":    strconv.FormatInt(r.ID, 10),
		"amount_minor": amount,
	}
	if currency != "" {
		props["currency"] = currency
		props["amount"] = money.Major(amount, currency)
	}
	e := ingest.Event{
		Type:           store.EventOrderRefunded,
		IdempotencyKey: "shopify:refund:" + strconv.FormatInt(r.ID, 10),
		Properties:     props,
	}
	if err := setTime(&e, firstNonEmpty(r.ProcessedAt, r.CreatedAt)); err != nil {
		return Result{}, fmt.Errorf("shopify refund %d: %w", r.ID, err)
	}
	return Result{Events: []ingest.Event{e}, CustomerOfOrder: OrderKey(r.OrderID)}, nil
}

func mapCustomer(d Delivery, body []byte, typ string) (Result, error) {
	var c customer
	if err := decode(body, &c); err != nil {
		return Result{}, err
	}
	if c.ID == 0 {
		return Result{}, errors.New("shopify customer: field id is missing")
	}
	id := strconv.FormatInt(c.ID, 10)
	attrs := map[string]any{}
	if c.Tags != "" {
		attrs["shopify_tags"] = c.Tags
	}
	if c.State != "" {
		attrs["shopify_state"] = c.State
	}
	e := ingest.Event{
		CustomerID: id,
		Type:       typ,
		Email:      c.Email,
		Name:       c.name(),
		Properties: map[string]any{"source": Source},
		Attributes: attrs,
	}
	at := c.CreatedAt
	if typ == EventSignedUp {
		e.IdempotencyKey = "shopify:customer:" + id + ":created"
	} else {
		at = c.UpdatedAt
		e.IdempotencyKey = "shopify:customer:" + id + ":updated:" + firstNonEmpty(d.EventID, c.UpdatedAt)
	}
	if err := setTime(&e, at); err != nil {
		return Result{}, fmt.Errorf("shopify customer %d: %w", c.ID, err)
	}
	return Result{Events: []ingest.Event{e}}, nil
}

type consent struct {
	CustomerID   int64  `json:"customer_id"`
	EmailAddress string `json:"email_address"`
	Consent      *struct {
		State            string `json:"state"`
		OptInLevel       string `json:"opt_in_level"`
		ConsentUpdatedAt string `json:"consent_updated_at"`
	} `json:"email_marketing_consent"`
}

func mapConsent(d Delivery, body []byte) (Result, error) {
	var c consent
	if err := decode(body, &c); err != nil {
		return Result{}, err
	}
	if c.CustomerID == 0 || c.Consent == nil {
		return Result{}, errors.New("shopify consent: fields customer_id and email_marketing_consent are required")
	}
	id := strconv.FormatInt(c.CustomerID, 10)
	state := strings.ToLower(c.Consent.State)
	e := ingest.Event{
		CustomerID: id,
		Type:       EventConsentUpdated,
		Email:      c.EmailAddress,
		Properties: map[string]any{"source": Source, "email_marketing": state, "opt_in_level": c.Consent.OptInLevel},
		// subscribed is the one state that is consent; pending (double
		// opt-in not confirmed), unsubscribed, redacted and not_subscribed are not.
		Attributes:     map[string]any{"accepts_email_marketing": state == "subscribed"},
		IdempotencyKey: "shopify:consent:" + id + ":" + firstNonEmpty(c.Consent.ConsentUpdatedAt, d.EventID),
	}
	if err := setTime(&e, c.Consent.ConsentUpdatedAt); err != nil {
		return Result{}, fmt.Errorf("shopify consent %d: %w", c.CustomerID, err)
	}
	return Result{Events: []ingest.Event{e}}, nil
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return fmt.Errorf("shopify payload: field %q is JSON %s, not the type Shopify documents", typ.Field, typ.Value)
		}
		return fmt.Errorf("shopify payload: malformed JSON: %w", err)
	}
	return nil
}

// setTime sets e.OccurredAt from one of Shopify's ISO 8601 times; an empty
// one leaves it to the time of receipt.
func setTime(e *ingest.Event, s string) error {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("time %q is not ISO 8601 with an offset", s)
	}
	t = t.UTC()
	e.OccurredAt = &t
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func orZero(s string) string {
	if strings.TrimSpace(s) == "" {
		return "0"
	}
	return s
}
