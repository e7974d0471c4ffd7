package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/worker"
)

// seedHistory gives customer c-1 a sign-up, a firing with a stage change
// and a coupon, and an email delivery: what the workers would have written.
func seedHistory(t *testing.T, db *testdb.DB) string {
	t.Helper()
	ctx := context.Background()
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	seedCustomer(t, db, "c-1", "ana@example.com", at)
	rs, err := rules.Parse("r.yaml", []byte(`version: 1
rules:
  - name: welcome-gift
    on: signed_up
    actions:
      - stage: acquisition
      - coupon: { percent: 10, expires_in: 14d }
`), rules.ParseOptions{})
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		st := store.New(tx)
		c, err := st.GetCustomer(ctx, "c-1")
		if err != nil {
			return err
		}
		fired := at.Add(time.Second)
		f := &store.Fire{
			Firing: store.Firing{CustomerID: c.ID, Rule: "welcome-gift", Occurrence: "event:1", RuleSetVersion: rs.Version,
				EventID: 1, FiredAt: fired},
			Stages:  []string{"acquisition"},
			Coupons: []*store.Coupon{{Kind: "percent", Value: 10, ExpiresAt: fired.Add(14 * 24 * time.Hour)}},
		}
		if err := st.Fire(ctx, []*store.Fire{f}, worker.NewCouponCode, 1); err != nil {
			return err
		}
		action, _ := json.Marshal(worker.EmailDelivery{Template: "welcome"})
		_, err = tx.Exec(ctx, `INSERT INTO deliveries (customer_id, firing_id, rule, channel, action, created_at)
			VALUES ('c-1', $1, 'welcome-gift', 'email', $2, $3)`, f.Firing.ID, action, at.Add(2*time.Second))
		return err
	}))
	return rs.Version
}

func TestCustomer(t *testing.T) {
	t.Parallel()

	db := testdb.New(t)
	version := seedHistory(t, db)
	before := rowCounts(t, db)

	stdout, stderr, code := runCLI(t, "customer", "c-1", "--database-url", db.URL)
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 7, stdout)
	require.Equal(t, "customer c-1 <ana@example.com> Ana: stage acquisition, 0 order(s), total spent 0.00", lines[0])
	require.Equal(t, "2025-03-01T10:00:00Z  event       #1 signed_up {}", lines[1])
	require.Equal(t, "2025-03-01T10:00:00Z  transition  entered reach (new customer)", lines[2])
	require.Equal(t, `2025-03-01T10:00:01Z  firing      rule "welcome-gift" fired (rules `+version+`), #1, on event #1`, lines[3])
	require.Equal(t, `2025-03-01T10:00:01Z  transition  reach -> acquisition by rule "welcome-gift" (rules `+version+`)`, lines[4])
	require.Regexp(t, `^2025-03-01T10:00:01Z  coupon      [A-Z0-9-]+ percent 10, expires 2025-03-15T10:00:01Z by rule "welcome-gift"$`, lines[5])
	require.Equal(t, `2025-03-01T10:00:02Z  delivery    #1 email queued, 0 attempt(s) {"template":"welcome"} by rule "welcome-gift"`, lines[6])
	require.Equal(t, before, rowCounts(t, db))

	_, stderr, code = runCLI(t, "customer", "nobody", "--database-url", db.URL)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "customer not found")
}

func TestTemplatesPreview(t *testing.T) {
	t.Parallel()

	db := testdb.New(t)
	seedHistory(t, db)
	before := rowCounts(t, db)

	t.Run("Text", func(t *testing.T) {
		stdout, stderr, code := runCLI(t, "templates", "preview", "first_order_bonus", "--customer", "c-1", "--database-url", db.URL)
		require.Equal(t, 0, code, stderr)
		require.True(t, strings.HasPrefix(stdout, "To: Ana <ana@example.com>\nSubject: A thank-you for your first order: 10% off\n\n"), stdout)
		require.Regexp(t, `Your code: [A-Z0-9-]+\n`, stdout)
		require.NotContains(t, stdout, "PREVIEW-CODE", "the customer's real coupon is shown")
	})

	t.Run("EML", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "welcome.eml")
		stdout, stderr, code := runCLI(t, "templates", "preview", "welcome", "--customer", "c-1", "--database-url", db.URL,
			"--out", out, "--subject", "Hi {{.Customer.Name}}")
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "wrote "+out)
		eml, err := os.ReadFile(out)
		require.NoError(t, err)
		require.Contains(t, string(eml), "Subject: Hi Ana\r\n")
		require.Contains(t, string(eml), "To: \"Ana\" <ana@example.com>\r\n")
		require.Contains(t, string(eml), "List-Unsubscribe: <https://unsubscribe.invalid/preview>")
		require.Contains(t, string(eml), "multipart/alternative")
	})

	t.Run("UnknownTemplate", func(t *testing.T) {
		_, stderr, code := runCLI(t, "templates", "preview", "nope", "--customer", "c-1", "--database-url", db.URL)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "unknown template")
	})

	require.Equal(t, before, rowCounts(t, db))
}
