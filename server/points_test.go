package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/store"
)

const pointsRules = `version: 1
defaults: { points_value: 0.05 }
rules:
  - name: hello
    on: signed_up
    actions: [{stage: reach}]
`

func TestPointsAPI(t *testing.T) {
	t.Parallel()
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(rulesPath, []byte(pointsRules), 0o600))
	b := startApp(t, func(c *app.Config) { c.RulesPath = rulesPath })
	ctx := context.Background()
	st := store.New(b.db.Pool)
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	day := 24 * time.Hour
	_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: "c1", Type: "signed_up", OccurredAt: at, ReceivedAt: at}, "reach", "v1")
	require.NoError(t, err)
	_, err = st.GrantPoints(ctx, []store.PointsGrantReq{
		{CustomerID: "c1", Amount: 100, Reason: "first order", GrantedAt: at, ExpiresAt: at.Add(30 * day), Key: "g1"},
		{CustomerID: "c1", Amount: 50, Reason: "promo", GrantedAt: at, ExpiresAt: at.Add(10 * day), Key: "g2"},
		{CustomerID: "c1", Amount: 20, Reason: "pending", GrantedAt: at, AvailableAt: at.Add(5 * day), Key: "g3"},
	})
	require.NoError(t, err)

	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		resp, text := do(t, newRequest(t, method, b.url+path, body, "Authorization", "Bearer "+apiToken, "Content-Type", "application/json"))
		var out map[string]any
		require.NoError(t, json.Unmarshal([]byte(text), &out), text)
		return resp.StatusCode, out
	}
	balance := func() float64 {
		t.Helper()
		code, out := call("GET", "/v1/customers/c1/points", "")
		require.Equal(t, http.StatusOK, code, out)
		return out["balance"].(float64)
	}

	t.Run("Get", func(t *testing.T) {
		code, out := call("GET", "/v1/customers/c1/points", "")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, 170.0, out["balance"])
		require.Equal(t, 20.0, out["pending"])
		require.Equal(t, at.Add(10*day).Format(time.RFC3339Nano), out["next_expiry"])
		lots := out["lots"].([]any)
		require.Len(t, lots, 3)
		require.Equal(t, "promo", lots[0].(map[string]any)["reason"], "soonest expiry first")
		require.Len(t, out["entries"].([]any), 3)

		code, out = call("GET", "/v1/customers/nobody/points", "")
		require.Equal(t, http.StatusNotFound, code)
		require.Contains(t, out["error"].(map[string]any)["message"], `no customer "nobody"`)
	})

	t.Run("Redeem", func(t *testing.T) {
		body := `{"points": 60, "order_id": "o-1", "idempotency_key": "r1"}`
		code, first := call("POST", "/v1/customers/c1/points/redeem", body)
		require.Equal(t, http.StatusOK, code, first)
		require.Equal(t, 60.0, first["points"])
		code, again := call("POST", "/v1/customers/c1/points/redeem", body)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, first, again, "a retry answers the same")
		require.Equal(t, 110.0, balance(), "spent once")
		require.Equal(t, 1, b.db.Count(t, "events", "customer_id = 'c1' AND type = 'points_spent' AND (properties->>'points')::int = 60"))
		// 50 from the lot expiring first, 10 from the next.
		require.Equal(t, 0, b.db.Count(t, "points_lots", "customer_id = 'c1' AND idempotency_key = 'g2' AND remaining > 0"))
		require.Equal(t, 1, b.db.Count(t, "points_lots", "customer_id = 'c1' AND idempotency_key = 'g1' AND remaining = 90"))

		code, out := call("POST", "/v1/customers/c1/points/redeem", `{"points": 61, "order_id": "o-1", "idempotency_key": "r1"}`)
		require.Equal(t, http.StatusConflict, code)
		require.Equal(t, "idempotency_key", out["error"].(map[string]any)["field"])
	})

	t.Run("Insufficient", func(t *testing.T) {
		before := balance()
		code, out := call("POST", "/v1/customers/c1/points/redeem", `{"points": 100, "idempotency_key": "too-much"}`)
		require.Equal(t, http.StatusConflict, code, out)
		require.Contains(t, out["error"].(map[string]any)["message"], "has 90 points to spend, 100 asked")
		require.Equal(t, before, balance(), "nothing changes")
		require.Equal(t, 0, b.db.Count(t, "points_operations", "idempotency_key = 'too-much'"))
	})

	t.Run("AsCoupon", func(t *testing.T) {
		body := `{"points": 40, "idempotency_key": "cp", "as_coupon": true}`
		code, first := call("POST", "/v1/customers/c1/points/redeem", body)
		require.Equal(t, http.StatusOK, code, first)
		cp := first["coupon"].(map[string]any)
		require.Equal(t, "amount", cp["kind"])
		require.Equal(t, 2.0, cp["value"], "40 points at 0.05")
		code, again := call("POST", "/v1/customers/c1/points/redeem", body)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, first, again)
		require.Equal(t, 1, b.db.Count(t, "coupons", fmt.Sprintf("customer_id = 'c1' AND code = '%s' AND value = 2", cp["code"])))
		require.Equal(t, 70.0, balance())
	})

	t.Run("Adjust", func(t *testing.T) {
		code, out := call("POST", "/v1/customers/c1/points/adjust", `{"points": -5, "idempotency_key": "a1"}`)
		require.Equal(t, http.StatusBadRequest, code)
		require.Equal(t, "reason", out["error"].(map[string]any)["field"])
		code, out = call("POST", "/v1/customers/c1/points/adjust", `{"points": -5, "reason": "double grant", "idempotency_key": "a1"}`)
		require.Equal(t, http.StatusOK, code, out)
		code, _ = call("POST", "/v1/customers/c1/points/adjust", `{"points": -5, "reason": "double grant", "idempotency_key": "a1"}`)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, 65.0, balance())
		require.Contains(t, b.logs.String(), `"reason":"double grant"`)
		require.Equal(t, 1, b.db.Count(t, "events", "customer_id = 'c1' AND type = 'points_spent' AND properties->>'kind' = 'adjust'"+
			" AND (properties->>'points')::int = 5 AND properties->>'reason' = 'double grant'"), "a negative adjustment records points_spent, once")
		code, _ = call("POST", "/v1/customers/c1/points/adjust", `{"points": 5, "reason": "goodwill", "idempotency_key": "a2"}`)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, 1, b.db.Count(t, "events", "customer_id = 'c1' AND type = 'points_spent' AND properties->>'kind' = 'adjust'"), "a grant spends nothing")
		code, _ = call("POST", "/v1/customers/c1/points/adjust", `{"points": -5, "reason": "goodwill undone", "idempotency_key": "a3"}`)
		require.Equal(t, http.StatusOK, code)
	})

	t.Run("BadInput", func(t *testing.T) {
		for _, tc := range []struct{ path, body, field string }{
			{"redeem", `{"points": 1, "idempotency_key": "x", "extra": 1}`, "extra"},
			{"redeem", `{"points": 0, "idempotency_key": "x"}`, "points"},
			{"redeem", `{"points": 1}`, "idempotency_key"},
			{"adjust", `{"points": 0, "reason": "r", "idempotency_key": "x"}`, "points"},
		} {
			code, out := call("POST", "/v1/customers/c1/points/"+tc.path, tc.body)
			require.Equal(t, http.StatusBadRequest, code, tc.body)
			require.Equal(t, tc.field, out["error"].(map[string]any)["field"], tc.body)
		}
		require.Equal(t, 65.0, balance())
	})

	t.Run("ConcurrentKeys", func(t *testing.T) {
		// 65 left, 20 of them pending: of 10 concurrent redemptions of 10, four succeed.
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			codes = map[int]int{}
		)
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, _ := do(t, newRequest(t, "POST", b.url+"/v1/customers/c1/points/redeem",
					fmt.Sprintf(`{"points": 10, "idempotency_key": "k%d"}`, i), "Authorization", "Bearer "+apiToken))
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		require.Equal(t, map[int]int{http.StatusOK: 4, http.StatusConflict: 6}, codes)
		require.Equal(t, 25.0, balance())
	})
}

// TestPointsAdjustGrantEvent checks that a positive adjustment records a
// points_granted event of the lot it granted, once per key, with its
// evaluation enqueued, as a rule's grant does; a negative one records none.
func TestPointsAdjustGrantEvent(t *testing.T) {
	t.Parallel()
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(rulesPath, []byte(pointsRules), 0o600))
	b := startApp(t, func(c *app.Config) { c.RulesPath = rulesPath })
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Hour)
	_, err := store.New(b.db.Pool).IngestEvent(ctx, &store.NewEvent{CustomerID: "g1", Type: "signed_up", OccurredAt: at, ReceivedAt: at}, "reach", "v1")
	require.NoError(t, err)
	for range 2 { // a retry records nothing more
		resp, text := do(t, newRequest(t, "POST", b.url+"/v1/customers/g1/points/adjust", `{"points": 25, "reason": "goodwill", "idempotency_key": "t-1"}`,
			"Authorization", "Bearer "+apiToken, "Content-Type", "application/json"))
		require.Equal(t, http.StatusOK, resp.StatusCode, text)
	}
	resp, text := do(t, newRequest(t, "POST", b.url+"/v1/customers/g1/points/adjust", `{"points": -5, "reason": "typo", "idempotency_key": "t-2"}`,
		"Authorization", "Bearer "+apiToken, "Content-Type", "application/json"))
	require.Equal(t, http.StatusOK, resp.StatusCode, text)

	var lot int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT id FROM points_lots WHERE customer_id = 'g1' AND idempotency_key = 'adjust:t-1'").Scan(&lot))
	require.Equal(t, 1, b.db.Count(t, "events", "customer_id = 'g1' AND type = 'points_granted'"), "one points_granted, for the positive adjustment")
	require.Equal(t, 1, b.db.Count(t, "events", "customer_id = 'g1' AND type = 'points_granted' AND (properties->>'points')::int = 25"+
		" AND properties->>'reason' = 'goodwill' AND (properties->>'lot_id')::bigint = $1 AND properties->>'rule' = ''"+
		" AND NOT properties ? 'expires_at' AND idempotency_key = 'points_granted:lot:' || $1", lot))
	require.Equal(t, 1, b.db.Count(t, "river_job", "kind = 'ciclo.evaluate' AND (args->>'event_id')::bigint ="+
		" (SELECT id FROM events WHERE customer_id = 'g1' AND type = 'points_granted')"), "its evaluation is enqueued")
}
