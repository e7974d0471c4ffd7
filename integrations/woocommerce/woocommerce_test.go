package woocommerce

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/ingest"
)

func readPayload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func TestIsPing(t *testing.T) {
	t.Parallel()
	signed := http.Header{}
	signed.Set(HeaderTopic, "order.created")
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   bool
	}{
		{name: "Ping", header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, body: string(readPayload(t, "ping.txt")), want: true},
		{name: "WithWebhookHeaders", header: signed, body: "webhook_id=12"},
		{name: "OtherForm", header: http.Header{}, body: "webhook_id=12&x=1"},
		{name: "NotANumber", header: http.Header{}, body: "webhook_id=abc"},
		{name: "JSON", header: http.Header{}, body: `{"id": 1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, IsPing(tt.header, []byte(tt.body)))
		})
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := readPayload(t, "order_created.json")
	require.NoError(t, Verify(body, Sign(body, "wc"), []string{"wc"}))
	require.NoError(t, Verify(body, Sign(body, "new"), []string{"old", "new"}))
	require.ErrorIs(t, Verify(body, Sign(body, "x"), []string{"wc"}), ErrBadSignature)
	require.ErrorIs(t, Verify(body, "", []string{"wc"}), ErrNoSignature)
	require.ErrorIs(t, Verify(body, Sign(body, "wc"), nil), ErrNoSecret)
}

func utc(s string) *time.Time {
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC)
	if err != nil {
		panic(err)
	}
	return &t
}

func TestMap(t *testing.T) {
	t.Parallel()
	guest := ingest.Event{CustomerID: "guest:john.doe@example.com", Email: "john.doe@example.com", Name: "John Doe"}
	placed := guest
	placed.Type = "order_placed"
	placed.IdempotencyKey = "woocommerce:order:727:placed"
	placed.OccurredAt = utc("2017-03-22T19:28:08")
	placed.Properties = map[string]any{
		"source": "woocommerce", "order_id": "727", "order_number": "727",
		"total": 29.35, "total_minor": int64(2935), "currency": "USD",
		"line_items": 2, "items_quantity": int64(3), "discount_codes": []any{"CIC-AB12CD"},
		"status": "processing",
	}
	placedLater := placed
	placedLater.Properties = map[string]any{}
	for k, v := range placed.Properties {
		placedLater.Properties[k] = v
	}
	placedLater.Properties["status"] = "refunded"
	refund := func(id, minor int64, amount float64, reason string) ingest.Event {
		e := guest
		e.Type = "order_refunded"
		e.IdempotencyKey = "woocommerce:refund:" + map[int64]string{726: "726", 728: "728"}[id]
		e.OccurredAt = utc("2017-03-25T10:00:00")
		e.Properties = map[string]any{
			"source": "woocommerce", "order_id": "727", "refund_id": map[int64]string{726: "726", 728: "728"}[id],
			"amount_minor": minor, "amount": amount, "currency": "USD",
		}
		if reason != "" {
			e.Properties["reason"] = reason
		}
		return e
	}
	cancelled := guest
	cancelled.Type = "order_cancelled"
	cancelled.IdempotencyKey = "woocommerce:order:727:cancelled"
	cancelled.OccurredAt = utc("2017-03-23T08:00:00")
	cancelled.Properties = map[string]any{"source": "woocommerce", "order_id": "727", "total": 29.35, "total_minor": int64(2935), "currency": "USD"}

	tests := []struct {
		name  string
		topic string
		file  string
		want  Result
	}{
		{name: "OrderProcessing", topic: "order.created", file: "order_created.json", want: Result{Events: []ingest.Event{placed}}},
		{name: "OrderPending", topic: "order.created", file: "order_pending.json", want: Result{Ignored: `order 727 is "pending": not placed, refunded or cancelled`}},
		{
			// The placed event keeps its key, so an order refunded later is
			// still placed once; each refund is its own event.
			name: "OrderRefunded", topic: "order.updated", file: "order_refunded.json",
			want: Result{Events: []ingest.Event{placedLater, refund(726, 1000, 10, ""), refund(728, 1935, 19.35, "Damaged")}},
		},
		{name: "OrderCancelled", topic: "order.updated", file: "order_cancelled.json", want: Result{Events: []ingest.Event{cancelled}}},
		{
			name: "CustomerCreated", topic: "customer.created", file: "customer_created.json",
			want: Result{Events: []ingest.Event{{
				CustomerID: "25", Type: "signed_up", IdempotencyKey: "woocommerce:customer:25:created",
				OccurredAt: utc("2017-03-21T19:09:28"), Email: "john.doe@example.com", Name: "John Doe",
				Properties: map[string]any{"source": "woocommerce"},
				Attributes: map[string]any{"woocommerce_role": "customer"},
			}}},
		},
		{
			name: "CustomerUpdated", topic: "customer.updated", file: "customer_created.json",
			want: Result{Events: []ingest.Event{{
				CustomerID: "25", Type: "customer_updated", IdempotencyKey: "woocommerce:customer:25:updated:2017-03-21T19:09:30",
				OccurredAt: utc("2017-03-21T19:09:30"), Email: "john.doe@example.com", Name: "John Doe",
				Properties: map[string]any{"source": "woocommerce"},
				Attributes: map[string]any{"woocommerce_role": "customer"},
			}}},
		},
		{name: "UnknownTopic", topic: "product.created", file: "customer_created.json", want: Result{Ignored: `topic "product.created" is not one ciclo maps`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Map(tt.topic, readPayload(t, tt.file))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestMapErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, topic, body, wantErr string
	}{
		{name: "Malformed", topic: "order.created", body: `{`, wantErr: "malformed JSON"},
		{name: "WrongType", topic: "order.created", body: `{"id": "727"}`, wantErr: `field "id"`},
		{name: "NoID", topic: "customer.created", body: `{"email": "a@b.c"}`, wantErr: "id is missing"},
		{name: "BadTotal", topic: "order.created", body: `{"id": 1, "status": "completed", "currency": "USD", "total": "abc", "customer_id": 3}`, wantErr: "total"},
		{name: "BadTime", topic: "order.created", body: `{"id": 1, "status": "completed", "currency": "USD", "total": "1.00", "customer_id": 3, "date_created_gmt": "today"}`, wantErr: "YYYY-MM-DD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Map(tt.topic, []byte(tt.body))
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
