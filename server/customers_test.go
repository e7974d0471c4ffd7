package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/server"
)

func TestCustomerAPI(t *testing.T) {
	t.Parallel()
	noon := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var outbox string
	b := startApp(t, func(c *app.Config) {
		c.Role = app.RoleAll
		c.Now = func() time.Time { return noon }
		outbox = c.OutboxDir
	})
	ctx := context.Background()
	auth := []string{"Authorization", "Bearer " + apiToken, "Content-Type", "application/json"}
	event := func(t *testing.T, body string) {
		t.Helper()
		resp, out := do(t, newRequest(t, http.MethodPost, b.url+"/v1/events", body, auth...))
		require.Equal(t, http.StatusAccepted, resp.StatusCode, out)
	}
	get := func(t *testing.T, method, path string) (*http.Response, string) {
		t.Helper()
		return do(t, newRequest(t, method, b.url+path, "", auth...))
	}
	const (
		id    = "cust-ana"
		email = "ana.erasable@example.com"
		name  = "Ana Erasable-Person"
	)
	waitFor := func(t *testing.T, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			require.False(t, time.Now().After(deadline), "timed out waiting for %s", what)
			time.Sleep(20 * time.Millisecond)
		}
	}
	outboxHolds := func(needles ...string) []string {
		var hits []string
		_ = filepath.WalkDir(outbox, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, n := range needles {
				if strings.Contains(strings.ToLower(string(raw)), strings.ToLower(n)) {
					hits = append(hits, p+": "+n)
				}
			}
			return nil
		})
		return hits
	}

	event(t, `{"customer_id":"`+id+`","type":"signed_up","email":"`+email+`","name":"`+name+`","attributes":{"accepts_email_marketing":true}}`)
	event(t, `{"customer_id":"`+id+`","type":"order_placed","properties":{"total":25.5,"order_id":"o1"}}`)
	waitFor(t, "the welcome and first-order emails in the outbox", func() bool {
		return b.db.Count(t, "deliveries", "customer_id = $1 AND status = 'sent'", id) == 2
	})
	// The erasure below is of a customer at rest: the evaluations of the
	// points events the order granted have run too. (An erasure racing a
	// job that is being inserted is not what this test covers.)
	waitFor(t, "the customer's jobs to finish", func() bool {
		return b.db.Count(t, "river_job", "args->>'customer_id' = $1 AND state IN ('available', 'running', 'retryable', 'scheduled', 'pending')", id) == 0
	})
	require.NotEmpty(t, outboxHolds(email))

	t.Run("GetCustomer", func(t *testing.T) {
		resp, out := get(t, http.MethodGet, "/v1/customers/"+id)
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		var c server.CustomerResponse
		require.NoError(t, json.Unmarshal([]byte(out), &c))
		require.Equal(t, email, c.Email)
		require.Equal(t, "conversion", c.Stage)
		require.Equal(t, 1, c.OrdersCount)
		require.Equal(t, 25.5, c.TotalSpent)
		require.NotNil(t, c.Consent.EmailMarketing)
		require.True(t, *c.Consent.EmailMarketing)
		require.True(t, c.Consent.Marketing)
		require.Len(t, c.Coupons, 1, "the first-order bonus")
		require.Equal(t, "percent", c.Coupons[0].Kind)
	})

	t.Run("GetCoupons", func(t *testing.T) {
		resp, out := get(t, http.MethodGet, "/v1/customers/"+id+"/coupons")
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		var cs server.CouponsResponse
		require.NoError(t, json.Unmarshal([]byte(out), &cs))
		require.Len(t, cs.Coupons, 1)
		c := cs.Coupons[0]
		require.NotEmpty(t, c.Code)
		require.Equal(t, 10.0, c.Value)
		require.NotNil(t, c.ExpiresAt)
		require.Equal(t, noon.Add(14*24*time.Hour), c.ExpiresAt.UTC())
		require.Nil(t, c.RedeemedAt)
	})

	t.Run("UnknownCustomer404", func(t *testing.T) {
		for _, m := range []string{"GET /v1/customers/nobody", "GET /v1/customers/nobody/coupons", "DELETE /v1/customers/nobody"} {
			method, path, _ := strings.Cut(m, " ")
			resp, out := get(t, method, path)
			require.Equal(t, http.StatusNotFound, resp.StatusCode, "%s: %s", m, out)
		}
	})

	t.Run("Erasure", func(t *testing.T) {
		resp, out := get(t, http.MethodDelete, "/v1/customers/"+id)
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		var er server.ErasureResponse
		require.NoError(t, json.Unmarshal([]byte(out), &er))
		require.Equal(t, 2, er.OutboxFilesDeleted)

		require.Empty(t, outboxHolds(email, name), "no outbox file holds the email or name")
		rows, err := b.db.Pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'`, b.db.Schema)
		require.NoError(t, err)
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Contains(t, tables, "customers")
		for _, table := range tables {
			for _, needle := range []string{"ana.erasable", "Erasable-Person", id} {
				n := b.db.Count(t, pgx.Identifier{table}.Sanitize()+" AS r", "r::text ILIKE '%' || $1 || '%'", needle)
				require.Zero(t, n, "table %s still holds %q", table, needle)
			}
		}
		resp, out = get(t, http.MethodGet, "/v1/customers/"+id)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, out)
		resp, out = get(t, http.MethodDelete, "/v1/customers/"+id)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, out)

		// A new customer with the erased address is never mailed.
		event(t, `{"customer_id":"cust-new","type":"signed_up","email":"`+strings.ToUpper(email)+`"}`)
		waitFor(t, "the new customer's welcome delivery", func() bool {
			return b.db.Count(t, "deliveries", "customer_id = 'cust-new' AND status <> 'queued'") == 1
		})
		require.Equal(t, 1, b.db.Count(t, "deliveries", "customer_id = 'cust-new' AND status = 'suppressed'"))
		require.Empty(t, outboxHolds(email), "no email written for the erased address")
	})
}
