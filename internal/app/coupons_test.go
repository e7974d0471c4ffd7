package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCouponRedeemed(t *testing.T) {
	t.Parallel()

	t.Run("MarksRedeemedOrAnswers422", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		status, body := post(t, b.url, token, `{"customer_id":"c-9","type":"order_placed","email":"eva@example.com","properties":{"total":20}}`)
		require.Equal(t, http.StatusAccepted, status, body)
		b.smtp.WaitMessages(t, 1, 15*time.Second)
		waitJobs(t, b.db)
		var code string
		require.NoError(t, b.db.Pool.QueryRow(context.Background(), `SELECT code FROM coupons WHERE customer_id = 'c-9'`).Scan(&code))
		require.Equal(t, 1, b.db.Count(t, "customers", "id = 'c-9' AND coupon_expires_at IS NOT NULL"))

		events := b.db.Count(t, "events", "")
		status, body = post(t, b.url, token, `{"customer_id":"c-9","type":"coupon_redeemed","properties":{"code":"NOPE-NOPE"}}`)
		require.Equal(t, http.StatusUnprocessableEntity, status, body)
		require.Contains(t, body, `has no coupon \"NOPE-NOPE\"`)
		status, body = post(t, b.url, token, `{"customer_id":"c-9","type":"coupon_redeemed"}`)
		require.Equal(t, http.StatusUnprocessableEntity, status, body)
		require.Contains(t, body, "properties.code")
		require.Equal(t, events, b.db.Count(t, "events", ""), "a rejected redemption stores nothing")

		status, body = post(t, b.url, token, `{"customer_id":"c-9","type":"coupon_redeemed","properties":{"code":"`+code+`"}}`)
		require.Equal(t, http.StatusAccepted, status, body)
		require.Equal(t, 1, b.db.Count(t, "coupons", "customer_id = 'c-9' AND redeemed_at IS NOT NULL"))
		require.Equal(t, 1, b.db.Count(t, "customers", "id = 'c-9' AND coupon_expires_at IS NULL"))
	})
}
