package server_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/integrations/shopify"
	"github.com/ciclohq/ciclo/integrations/woocommerce"
	"github.com/ciclohq/ciclo/internal/app"
)

const (
	shopifyOld, shopifyNew = "shopify-old-secret", "shopify-new-secret"
	wooSecret              = "woo-secret"
	// shopifyCustomer is the customer of the orders in Shopify's examples.
	shopifyCustomer = "115310627314723954"
	wooGuest        = "guest:john.doe@example.com"
)

func testdata(t *testing.T, source, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "integrations", source, "testdata", name))
	require.NoError(t, err)
	return string(b)
}

// facts reads a customer's orders_count and total_spent_cents.
func facts(t *testing.T, b *appBundle, id string) (orders int, cents int64) {
	t.Helper()
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`SELECT orders_count, total_spent_cents FROM customers WHERE id = $1`, id).Scan(&orders, &cents))
	return orders, cents
}

// rows counts what a delivery can write.
func rows(t *testing.T, b *appBundle) (events, customers, jobs int) {
	t.Helper()
	return b.db.Count(t, "events", "true"), b.db.Count(t, "customers", "true"), b.db.Count(t, "river_job", "kind = 'ciclo.evaluate'")
}

func TestShopifyWebhook(t *testing.T) {
	t.Parallel()
	b := startApp(t, func(c *app.Config) { c.ShopifySecrets = []string{shopifyOld, shopifyNew} })
	url := b.url + "/v1/integrations/shopify"
	seq := 0
	send := func(t *testing.T, topic, body, signature string, headers ...string) (*http.Response, string) {
		t.Helper()
		seq++
		h := []string{"Content-Type", "application/json", shopify.HeaderTopic, topic,
			shopify.HeaderEventID, "evt-" + topic, shopify.HeaderWebhookID, "wh-" + string(rune('a'+seq%26)),
			shopify.HeaderTriggeredAt, time.Now().UTC().Format(time.RFC3339Nano), shopify.HeaderShopDomain, "shop.myshopify.com"}
		if signature != "" {
			h = append(h, shopify.HeaderHmac, signature)
		}
		return do(t, newRequest(t, http.MethodPost, url, body, append(h, headers...)...))
	}
	deliver := func(t *testing.T, topic, file string, headers ...string) string {
		t.Helper()
		body := testdata(t, "shopify", file)
		resp, out := send(t, topic, body, shopify.Sign([]byte(body), shopifyNew), headers...)
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		return out
	}
	order := testdata(t, "shopify", "orders_create.json")

	// Subtests run in order: each builds on the rows of the one before.
	t.Run("WrongOrMissingSignatureWritesNothing", func(t *testing.T) {
		for name, sig := range map[string]string{
			"wrong secret": shopify.Sign([]byte(order), "not-the-secret"),
			"other body":   shopify.Sign([]byte(order+" "), shopifyNew),
			"not base64":   "%%%",
			"missing":      "",
		} {
			resp, body := send(t, "orders/create", order, sig)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: %s", name, body)
			require.Contains(t, body, shopify.HeaderHmac, name)
		}
		e, c, j := rows(t, b)
		require.Equal(t, [3]int{0, 0, 0}, [3]int{e, c, j}, "events, customers, jobs")
	})

	t.Run("StaleUnknownDeliveryRefused", func(t *testing.T) {
		resp, body := send(t, "orders/create", order, shopify.Sign([]byte(order), shopifyNew),
			shopify.HeaderTriggeredAt, time.Now().Add(-49*time.Hour).UTC().Format(time.RFC3339))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		require.Contains(t, body, "older than")
		e, c, _ := rows(t, b)
		require.Equal(t, [2]int{0, 0}, [2]int{e, c})
	})

	t.Run("OrderPlacedWithCouponRedeemedAndTestTag", func(t *testing.T) {
		ctx := context.Background()
		_, err := b.db.Pool.Exec(ctx, `INSERT INTO customers (id, stage) VALUES ($1, 'reach')`, shopifyCustomer)
		require.NoError(t, err)
		_, err = b.db.Pool.Exec(ctx, `INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value, expires_at, created_at)
			VALUES ('CIC-AB12CD', $1, 'first-order-bonus', 1, 'percent', 10, now() + interval '14 days', now())`, shopifyCustomer)
		require.NoError(t, err)

		out := deliver(t, "orders/create", "orders_create.json")
		require.Contains(t, out, `"duplicate":false`)
		var typ, total, minor, test string
		require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT type, properties->>'total', properties->>'total_minor', properties->>'test'
			FROM events WHERE customer_id = $1`, shopifyCustomer).Scan(&typ, &total, &minor, &test))
		require.Equal(t, []string{"order_placed", "403", "40300", "true"}, []string{typ, total, minor, test})
		orders, cents := facts(t, b, shopifyCustomer)
		require.Equal(t, 1, orders)
		require.Equal(t, int64(40300), cents)
		require.Equal(t, 1, b.db.Count(t, "coupons", "customer_id = $1 AND redeemed_at IS NOT NULL", shopifyCustomer),
			"the order's discount code cic-ab12cd is the customer's ciclo coupon")
		require.Equal(t, 1, b.db.Count(t, "river_job", "kind = 'ciclo.evaluate'"), "evaluation enqueued")
	})

	t.Run("ReplayChangesNothing", func(t *testing.T) {
		e0, c0, j0 := rows(t, b)
		// The same event again, orders/paid for the same order, and a delivery
		// signed with the rotated-out secret.
		out := deliver(t, "orders/create", "orders_create.json")
		require.Contains(t, out, `"duplicate":true`)
		deliver(t, "orders/paid", "orders_paid.json")
		body := testdata(t, "shopify", "orders_create.json")
		resp, out := send(t, "orders/create", body, shopify.Sign([]byte(body), shopifyOld))
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		// A stale replay of a known event is still a plain duplicate.
		resp, out = send(t, "orders/create", body, shopify.Sign([]byte(body), shopifyNew),
			shopify.HeaderTriggeredAt, time.Now().Add(-72*time.Hour).UTC().Format(time.RFC3339))
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		require.Contains(t, out, `"duplicate":true`)
		e, c, j := rows(t, b)
		require.Equal(t, [3]int{e0, c0, j0}, [3]int{e, c, j})
		orders, cents := facts(t, b, shopifyCustomer)
		require.Equal(t, 1, orders)
		require.Equal(t, int64(40300), cents)
	})

	t.Run("RefundCorrectsFacts", func(t *testing.T) {
		deliver(t, "refunds/create", "refunds_create.json")
		require.Equal(t, 1, b.db.Count(t, "events", "customer_id = $1 AND type = 'order_refunded'", shopifyCustomer),
			"the refund takes the customer of its order")
		orders, cents := facts(t, b, shopifyCustomer)
		require.Equal(t, 1, orders)
		require.Equal(t, int64(40300-19900), cents, "the successful refund transaction of 199.00 (the failed one of 10.00 is not)")
		deliver(t, "refunds/create", "refunds_create.json")
		_, cents = facts(t, b, shopifyCustomer)
		require.Equal(t, int64(20400), cents, "a replayed refund subtracts once")
	})

	t.Run("CancellationUncounts", func(t *testing.T) {
		deliver(t, "orders/cancelled", "orders_cancelled.json")
		orders, cents := facts(t, b, shopifyCustomer)
		require.Equal(t, 0, orders)
		require.Equal(t, int64(0), cents)
	})

	t.Run("UnknownTopicIgnored", func(t *testing.T) {
		e0, _, _ := rows(t, b)
		body := `{"id": 1}`
		resp, out := send(t, "products/update", body, shopify.Sign([]byte(body), shopifyNew))
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		require.Contains(t, out, "ignored")
		e, _, _ := rows(t, b)
		require.Equal(t, e0, e)
		require.Contains(t, b.logs.String(), "webhook delivery ignored")
	})

	t.Run("ConsentSetsAttribute", func(t *testing.T) {
		deliver(t, "customers_email_marketing_consent/update", "customers_email_marketing_consent_update.json")
		var accepts string
		require.NoError(t, b.db.Pool.QueryRow(context.Background(),
			`SELECT attributes->>'accepts_email_marketing' FROM customers WHERE id = '706405506930370084'`).Scan(&accepts))
		require.Equal(t, "true", accepts)
	})
}

func TestWooCommerceWebhook(t *testing.T) {
	t.Parallel()
	b := startApp(t, func(c *app.Config) { c.WooCommerceSecrets = []string{wooSecret} })
	url := b.url + "/v1/integrations/woocommerce"
	seq := 0
	deliver := func(t *testing.T, topic, file, secret string) (*http.Response, string) {
		t.Helper()
		seq++
		body := testdata(t, "woocommerce", file)
		h := []string{"Content-Type", "application/json", woocommerce.HeaderTopic, topic,
			woocommerce.HeaderDeliveryID, strings.Repeat("d", seq), woocommerce.HeaderSource, "https://shop.example/"}
		if secret != "" {
			h = append(h, woocommerce.HeaderSignature, woocommerce.Sign([]byte(body), secret))
		}
		return do(t, newRequest(t, http.MethodPost, url, body, h...))
	}

	t.Run("PingAnswers200AndWritesNothing", func(t *testing.T) {
		resp, out := do(t, newRequest(t, http.MethodPost, url, testdata(t, "woocommerce", "ping.txt"),
			"Content-Type", "application/x-www-form-urlencoded"))
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		e, c, j := rows(t, b)
		require.Equal(t, [3]int{0, 0, 0}, [3]int{e, c, j})
	})

	t.Run("WrongOrMissingSignatureWritesNothing", func(t *testing.T) {
		for _, secret := range []string{"wrong", ""} {
			resp, out := deliver(t, "order.created", "order_created.json", secret)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, out)
		}
		e, c, j := rows(t, b)
		require.Equal(t, [3]int{0, 0, 0}, [3]int{e, c, j})
	})

	t.Run("PendingOrderIgnored", func(t *testing.T) {
		resp, out := deliver(t, "order.created", "order_pending.json", wooSecret)
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		require.Contains(t, out, "ignored")
		e, _, _ := rows(t, b)
		require.Equal(t, 0, e)
	})

	t.Run("OrderPlacedOnce", func(t *testing.T) {
		for range 2 { // redelivered with a new delivery id: once
			resp, out := deliver(t, "order.created", "order_created.json", wooSecret)
			require.Equal(t, http.StatusOK, resp.StatusCode, out)
		}
		require.Equal(t, 1, b.db.Count(t, "events", "customer_id = $1 AND type = 'order_placed'", wooGuest))
		orders, cents := facts(t, b, wooGuest)
		require.Equal(t, 1, orders)
		require.Equal(t, int64(2935), cents)
	})

	t.Run("RefundCorrectsFacts", func(t *testing.T) {
		resp, out := deliver(t, "order.updated", "order_refunded.json", wooSecret)
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		require.Equal(t, 2, b.db.Count(t, "events", "customer_id = $1 AND type = 'order_refunded'", wooGuest))
		orders, cents := facts(t, b, wooGuest)
		require.Equal(t, 1, orders, "a refund does not uncount the order")
		require.Equal(t, int64(0), cents, "10.00 and 19.35 refunded of 29.35")
	})

	t.Run("CustomerCreated", func(t *testing.T) {
		resp, out := deliver(t, "customer.created", "customer_created.json", wooSecret)
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		require.Equal(t, 1, b.db.Count(t, "events", "customer_id = '25' AND type = 'signed_up'"))
	})
}
