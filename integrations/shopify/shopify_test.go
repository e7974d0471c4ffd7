package shopify

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

func TestVerify(t *testing.T) {
	t.Parallel()
	body := readPayload(t, "orders_create.json")
	tests := []struct {
		name      string
		signature string
		secrets   []string
		wantErr   error
	}{
		{name: "Valid", signature: Sign(body, "s3cret"), secrets: []string{"s3cret"}},
		{name: "RotatedSecret", signature: Sign(body, "new"), secrets: []string{"old", "new"}},
		{name: "WrongSecret", signature: Sign(body, "other"), secrets: []string{"s3cret"}, wantErr: ErrBadSignature},
		{name: "Missing", signature: "", secrets: []string{"s3cret"}, wantErr: ErrNoSignature},
		{name: "NotBase64", signature: "%%%", secrets: []string{"s3cret"}, wantErr: ErrBadSignature},
		{name: "NoSecret", signature: Sign(body, "s3cret"), wantErr: ErrNoSecret},
		{name: "TamperedBody", signature: Sign(append([]byte(" "), body...), "s3cret"), secrets: []string{"s3cret"}, wantErr: ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(body, tt.signature, tt.secrets)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}
}

func TestReadDelivery(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set(HeaderTopic, "orders/create")
	h.Set(HeaderEventID, "98880550-7158-44d4-b7cd-2c97c8a091b5")
	h.Set(HeaderWebhookID, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
	h.Set(HeaderShopDomain, "example.myshopify.com")
	h.Set(HeaderTriggeredAt, "2023-03-29T18:00:27.877041743Z")
	d := ReadDelivery(h)
	require.Equal(t, "orders/create", d.Topic)
	require.Equal(t, "98880550-7158-44d4-b7cd-2c97c8a091b5", d.EventID)
	require.Equal(t, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", d.WebhookID)
	require.Equal(t, "example.myshopify.com", d.Shop)
	require.Equal(t, time.Date(2023, 3, 29, 18, 0, 27, 877041743, time.UTC), d.TriggeredAt)
}

func at(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	t = t.UTC()
	return &t
}

func TestMap(t *testing.T) {
	t.Parallel()
	order := map[string]any{
		"source": "shopify", "order_id": "820982911946154508", "order_number": int64(1234),
		"total": 403.0, "total_minor": int64(40300), "currency": "USD",
		"line_items": 2, "items_quantity": int64(2), "discount_codes": []any{"cic-ab12cd"},
		"test": true,
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name    string
		topic   string
		file    string
		eventID string
		want    Result
	}{
		{
			name: "OrderCreate", topic: "orders/create", file: "orders_create.json",
			want: Result{Events: []ingest.Event{{
				CustomerID: "115310627314723954", Type: "order_placed",
				IdempotencyKey: "shopify:order:820982911946154508:placed",
				OccurredAt:     at("2022-01-01T00:00:00Z"), Email: "john@example.com", Name: "John Smith",
				Properties: with(order, "financial_status", "voided"),
			}}},
		},
		{
			// orders/paid shares the order's key: the order counts once.
			name: "OrderPaid", topic: "orders/paid", file: "orders_paid.json",
			want: Result{Events: []ingest.Event{{
				CustomerID: "115310627314723954", Type: "order_placed",
				IdempotencyKey: "shopify:order:820982911946154508:placed",
				OccurredAt:     at("2022-01-01T00:00:00Z"), Email: "john@example.com", Name: "John Smith",
				Properties: with(order, "financial_status", "paid"),
			}}},
		},
		{
			name: "OrderCancelled", topic: "orders/cancelled", file: "orders_cancelled.json",
			want: Result{Events: []ingest.Event{{
				CustomerID: "115310627314723954", Type: "order_cancelled",
				IdempotencyKey: "shopify:order:820982911946154508:cancelled",
				OccurredAt:     at("2022-01-02T15:00:00Z"), Email: "john@example.com", Name: "John Smith",
				Properties: with(order, "financial_status", "voided", "reason", "customer"),
			}}},
		},
		{
			name: "Refund", topic: "refunds/create", file: "refunds_create.json",
			want: Result{
				Events: []ingest.Event{{
					Type: "order_refunded", IdempotencyKey: "shopify:refund:890088186047892319",
					OccurredAt: at("2022-01-04T00:00:00Z"),
					Properties: map[string]any{
						"source": "shopify", "order_id": "820982911946154508", "refund_id": "890088186047892319",
						"amount_minor": int64(19900), "amount": 199.0, "currency": "USD",
					},
				}},
				CustomerOfOrder: "shopify:order:820982911946154508:placed",
			},
		},
		{
			name: "CustomerCreate", topic: "customers/create", file: "customers_create.json",
			want: Result{Events: []ingest.Event{{
				CustomerID: "706405506930370084", Type: "signed_up",
				IdempotencyKey: "shopify:customer:706405506930370084:created",
				OccurredAt:     at("2022-01-01T00:00:00Z"), Email: "bob@example.com", Name: "Bob Biller",
				Properties: map[string]any{"source": "shopify"},
				Attributes: map[string]any{"shopify_state": "disabled"},
			}}},
		},
		{
			name: "CustomerUpdate", topic: "customers/update", file: "customers_update.json", eventID: "ev-1",
			want: Result{Events: []ingest.Event{{
				CustomerID: "706405506930370084", Type: "customer_updated",
				IdempotencyKey: "shopify:customer:706405506930370084:updated:ev-1",
				OccurredAt:     at("2022-02-01T14:30:00Z"), Email: "bob.biller@example.com", Name: "Bob Biller",
				Properties: map[string]any{"source": "shopify"},
				Attributes: map[string]any{"shopify_state": "disabled", "shopify_tags": "vip"},
			}}},
		},
		{
			name: "Consent", topic: "customers_email_marketing_consent/update", file: "customers_email_marketing_consent_update.json",
			want: Result{Events: []ingest.Event{{
				CustomerID: "706405506930370084", Type: "marketing_consent_updated",
				IdempotencyKey: "shopify:consent:706405506930370084:2022-02-02T19:00:00-05:00",
				OccurredAt:     at("2022-02-03T00:00:00Z"), Email: "bob.biller@example.com",
				Properties: map[string]any{"source": "shopify", "email_marketing": "subscribed", "opt_in_level": "confirmed_opt_in"},
				Attributes: map[string]any{"accepts_email_marketing": true},
			}}},
		},
		{
			name: "UnknownTopic", topic: "products/create", file: "customers_create.json",
			want: Result{Ignored: `topic "products/create" is not one ciclo maps`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Map(Delivery{Topic: tt.topic, EventID: tt.eventID}, readPayload(t, tt.file))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestMapErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		topic   string
		body    string
		wantErr string
		ignored string
	}{
		{name: "Malformed", topic: "orders/create", body: `{"id": 1,`, wantErr: "malformed JSON"},
		{name: "WrongType", topic: "orders/create", body: `{"id": "x"}`, wantErr: `field "id"`},
		{name: "NoID", topic: "orders/create", body: `{"customer": {"id": 5}}`, wantErr: "id is missing"},
		{name: "BadTotal", topic: "orders/paid", body: `{"id": 1, "currency": "USD", "total_price": "1,00", "customer": {"id": 5}}`, wantErr: "total_price"},
		{name: "BadTime", topic: "orders/paid", body: `{"id": 1, "currency": "USD", "total_price": "1.00", "created_at": "yesterday", "customer": {"id": 5}}`, wantErr: "ISO 8601"},
		{name: "GuestOrder", topic: "orders/create", body: `{"id": 1, "currency": "USD", "total_price": "1.00"}`, ignored: "has no customer"},
		{name: "RefundWithoutOrder", topic: "refunds/create", body: `{"id": 1}`, wantErr: "order_id"},
		{name: "ConsentWithoutState", topic: "customers_email_marketing_consent/update", body: `{"customer_id": 1}`, wantErr: "email_marketing_consent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Map(Delivery{Topic: tt.topic}, []byte(tt.body))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Empty(t, got.Events)
			require.Contains(t, got.Ignored, tt.ignored)
		})
	}
}
