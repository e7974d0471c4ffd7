// Package woocommerce verifies WooCommerce webhook deliveries and maps their
// payloads to ingest events. It has no SQL and no HTTP server: the server's
// route calls IsPing, Verify, then Map, then ingests what Map returns.
//
// WooCommerce's webhooks: https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks
// (topics order.created, order.updated, customer.created, customer.updated).
// WooCommerce never retries a delivery, gives each one a new delivery id and
// builds the payload when it sends, so events are keyed by the resource:
// an order is placed once, a refund is refunded once.
package woocommerce

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/integrations/hmacsig"
	"github.com/ciclohq/ciclo/money"
	"github.com/ciclohq/ciclo/store"
)

// Headers WooCommerce sets on every webhook delivery.
const (
	HeaderSignature  = "X-WC-Webhook-Signature"
	HeaderTopic      = "X-WC-Webhook-Topic"
	HeaderResource   = "X-WC-Webhook-Resource"
	HeaderEvent      = "X-WC-Webhook-Event"
	HeaderWebhookID  = "X-WC-Webhook-ID"
	HeaderDeliveryID = "X-WC-Webhook-Delivery-ID"
	HeaderSource     = "X-WC-Webhook-Source"
)

// Event types the topics map to, besides the order events
// (store.EventOrderPlaced, …).
const (
	EventSignedUp        = "signed_up"
	EventCustomerUpdated = "customer_updated"
)

// Source is the properties.source of every event this package makes.
const Source = "woocommerce"

var (
	// ErrNoSignature is returned by Verify when the delivery is unsigned.
	ErrNoSignature = errors.New("woocommerce: missing " + HeaderSignature + " header")
	// ErrBadSignature is returned by Verify when no configured secret
	// produces the delivery's signature.
	ErrBadSignature = errors.New("woocommerce: " + HeaderSignature + " does not match the body for any configured secret")
	// ErrNoSecret is returned by Verify when no secret is configured.
	ErrNoSecret = errors.New("woocommerce: no secret configured: set CICLO_WOOCOMMERCE_SECRET to the webhook's secret")
)

// Result is what one delivery maps to.
type Result struct {
	// Events to ingest, in order; empty when the delivery is ignored.
	Events []ingest.Event
	// Ignored says why nothing is ingested, for a debug log line.
	Ignored string
}

// IsPing reports whether a request is the ping WooCommerce sends when a
// webhook is created: a form POST of webhook_id=N with no X-WC-Webhook-*
// headers and no signature. It must be answered 200 and writes nothing.
func IsPing(h http.Header, body []byte) bool {
	for k := range h {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), "X-Wc-Webhook-") {
			return false
		}
	}
	v, err := url.ParseQuery(strings.TrimSpace(string(body)))
	if err != nil || len(v) != 1 {
		return false
	}
	_, err = strconv.ParseInt(v.Get("webhook_id"), 10, 64)
	return err == nil
}

// Verify checks signature (X-WC-Webhook-Signature, base64 HMAC-SHA256 of
// the raw body) against each secret in constant time.
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

// Sign returns the X-WC-Webhook-Signature value for body under secret.
func Sign(body []byte, secret string) string {
	return hmacsig.Sign(body, secret)
}

// Map turns a verified delivery of topic (X-WC-Webhook-Topic) into events.
func Map(topic string, body []byte) (Result, error) {
	switch topic {
	case "order.created", "order.updated":
		return mapOrder(body)
	case "customer.created":
		return mapCustomer(body, EventSignedUp)
	case "customer.updated":
		return mapCustomer(body, EventCustomerUpdated)
	}
	return Result{Ignored: fmt.Sprintf("topic %q is not one ciclo maps", topic)}, nil
}

type address struct {
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Email     string `json:"email"`
}

type order struct {
	ID              int64   `json:"id"`
	Number          string  `json:"number"`
	Status          string  `json:"status"`
	Currency        string  `json:"currency"`
	DateCreatedGMT  string  `json:"date_created_gmt"`
	DateModifiedGMT string  `json:"date_modified_gmt"`
	DatePaidGMT     *string `json:"date_paid_gmt"`
	Total           string  `json:"total"`
	CustomerID      int64   `json:"customer_id"`
	Billing         address `json:"billing"`
	LineItems       []struct {
		Quantity int64 `json:"quantity"`
	} `json:"line_items"`
	CouponLines []struct {
		Code string `json:"code"`
	} `json:"coupon_lines"`
	Refunds []struct {
		ID     int64  `json:"id"`
		Reason string `json:"reason"`
		Total  string `json:"total"`
	} `json:"refunds"`
}

// placed reports whether an order counts as placed: paid, or in a status
// that WooCommerce reaches only after payment.
func (o *order) placed() bool {
	switch o.Status {
	case "processing", "completed", "refunded":
		return true
	}
	return o.DatePaidGMT != nil && *o.DatePaidGMT != ""
}

func mapOrder(body []byte) (Result, error) {
	var o order
	if err := decode(body, &o); err != nil {
		return Result{}, err
	}
	if o.ID == 0 {
		return Result{}, errors.New("woocommerce order: field id is missing")
	}
	customerID := customerKey(o.CustomerID, o.Billing.Email)
	if customerID == "" {
		return Result{Ignored: fmt.Sprintf("order %d has neither a customer_id nor a billing email", o.ID)}, nil
	}
	total, err := money.ParseMinor(orZero(o.Total), o.Currency)
	if err != nil {
		return Result{}, fmt.Errorf("woocommerce order %d: total: %w", o.ID, err)
	}
	id := strconv.FormatInt(o.ID, 10)
	base := ingest.Event{
		CustomerID: customerID,
		Email:      o.Billing.Email,
		Name:       strings.TrimSpace(o.Billing.FirstName + " " + o.Billing.LastName),
	}
	var events []ingest.Event
	if o.placed() {
		codes := make([]any, 0, len(o.CouponLines))
		for _, c := range o.CouponLines {
			if code := strings.TrimSpace(c.Code); code != "" {
				codes = append(codes, code)
			}
		}
		var quantity int64
		for _, li := range o.LineItems {
			quantity += li.Quantity
		}
		e := base
		e.Type = store.EventOrderPlaced
		e.IdempotencyKey = "woocommerce:order:" + id + ":placed"
		e.Properties = map[string]any{
			"source": Source, "order_id": id, "order_number": o.Number,
			"total": money.Major(total, o.Currency), "total_minor": total, "currency": o.Currency,
			"line_items": len(o.LineItems), "items_quantity": quantity, "discount_codes": codes,
			"status": o.Status,
		}
		paid := o.DateCreatedGMT
		if o.DatePaidGMT != nil && *o.DatePaidGMT != "" {
			paid = *o.DatePaidGMT
		}
		if err := setTime(&e, paid); err != nil {
			return Result{}, fmt.Errorf("woocommerce order %d: %w", o.ID, err)
		}
		events = append(events, e)
	}
	for i, r := range o.Refunds {
		// WooCommerce lists refunds with negative totals.
		amount, err := money.ParseMinor(strings.TrimPrefix(strings.TrimSpace(r.Total), "-"), o.Currency)
		if err != nil {
			return Result{}, fmt.Errorf("woocommerce order %d: refunds[%d].total: %w", o.ID, i, err)
		}
		e := base
		e.Type = store.EventOrderRefunded
		e.IdempotencyKey = "woocommerce:refund:" + strconv.FormatInt(r.ID, 10)
		e.Properties = map[string]any{
			"source": Source, "order_id": id, "refund_id": strconv.FormatInt(r.ID, 10),
			"amount_minor": amount, "amount": money.Major(amount, o.Currency), "currency": o.Currency,
		}
		if r.Reason != "" {
			e.Properties["reason"] = r.Reason
		}
		if err := setTime(&e, o.DateModifiedGMT); err != nil {
			return Result{}, fmt.Errorf("woocommerce order %d: %w", o.ID, err)
		}
		events = append(events, e)
	}
	if o.Status == "cancelled" {
		e := base
		e.Type = store.EventOrderCancelled
		e.IdempotencyKey = "woocommerce:order:" + id + ":cancelled"
		e.Properties = map[string]any{
			"source": Source, "order_id": id, "total": money.Major(total, o.Currency),
			"total_minor": total, "currency": o.Currency,
		}
		if err := setTime(&e, o.DateModifiedGMT); err != nil {
			return Result{}, fmt.Errorf("woocommerce order %d: %w", o.ID, err)
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		return Result{Ignored: fmt.Sprintf("order %d is %q: not placed, refunded or cancelled", o.ID, o.Status)}, nil
	}
	return Result{Events: events}, nil
}

type customer struct {
	ID              int64  `json:"id"`
	Email           string `json:"email"`
	FirstName       string `json:"first_name"`
	LastName        string `json:"last_name"`
	Role            string `json:"role"`
	Username        string `json:"username"`
	DateCreatedGMT  string `json:"date_created_gmt"`
	DateModifiedGMT string `json:"date_modified_gmt"`
	IsPaying        bool   `json:"is_paying_customer"`
}

func mapCustomer(body []byte, typ string) (Result, error) {
	var c customer
	if err := decode(body, &c); err != nil {
		return Result{}, err
	}
	if c.ID == 0 {
		return Result{}, errors.New("woocommerce customer: field id is missing")
	}
	id := strconv.FormatInt(c.ID, 10)
	e := ingest.Event{
		CustomerID: id,
		Type:       typ,
		Email:      c.Email,
		Name:       strings.TrimSpace(c.FirstName + " " + c.LastName),
		Properties: map[string]any{"source": Source},
	}
	if c.Role != "" {
		e.Attributes = map[string]any{"woocommerce_role": c.Role}
	}
	at := c.DateCreatedGMT
	if typ == EventSignedUp {
		e.IdempotencyKey = "woocommerce:customer:" + id + ":created"
	} else {
		at = c.DateModifiedGMT
		e.IdempotencyKey = "woocommerce:customer:" + id + ":updated:" + c.DateModifiedGMT
	}
	if err := setTime(&e, at); err != nil {
		return Result{}, fmt.Errorf("woocommerce customer %d: %w", c.ID, err)
	}
	return Result{Events: []ingest.Event{e}}, nil
}

// customerKey is the ciclo customer id of a WooCommerce customer: its id,
// or for a guest checkout (customer_id 0) its billing email.
func customerKey(id int64, email string) string {
	if id != 0 {
		return strconv.FormatInt(id, 10)
	}
	if email = strings.ToLower(strings.TrimSpace(email)); email != "" {
		return "guest:" + email
	}
	return ""
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return fmt.Errorf("woocommerce payload: field %q is JSON %s, not the type WooCommerce documents", typ.Field, typ.Value)
		}
		return fmt.Errorf("woocommerce payload: malformed JSON: %w", err)
	}
	return nil
}

// setTime sets e.OccurredAt from a WooCommerce *_gmt time (ISO 8601 without
// an offset, in UTC); an empty one leaves it to the time of receipt.
func setTime(e *ingest.Event, s string) error {
	if s == "" {
		return nil
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC)
	if err != nil {
		return fmt.Errorf("time %q is not WooCommerce's YYYY-MM-DDTHH:MM:SS", s)
	}
	e.OccurredAt = &t
	return nil
}

func orZero(s string) string {
	if strings.TrimSpace(s) == "" {
		return "0"
	}
	return s
}
