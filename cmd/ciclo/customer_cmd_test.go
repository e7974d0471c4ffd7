package main

import (
	"context"
	"encoding/json"
	"fmt"
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
		if err := st.Fire(ctx, []*store.Fire{f}, store.NewCouponCode, 1); err != nil {
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

	// RULE: what the rule would send, not the template's defaults and the
	// customer's latest coupon.
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(rulesFile, []byte(`version: 1
stages: [reach, conversion]
rules:
  - name: first-order-bonus
    on: order_placed
    when: customer.orders_count == 1
    actions:
      - stage: conversion
      - coupon: { amount: 5, expires_in: 30d }
      - email: { template: first_order_bonus, subject: "A gift for {{.Customer.Name}}" }
  - name: welcome
    on: signed_up
    actions:
      - email: { template: welcome, subject: "Welcome aboard" }
  - name: stage-only
    on: signed_up
    actions:
      - stage: conversion
`), 0o644))
	var latestCode string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT code FROM coupons WHERE customer_id = 'c-1'`).Scan(&latestCode))

	t.Run("Rule", func(t *testing.T) {
		stdout, stderr, code := runCLI(t, "templates", "preview", "first-order-bonus", "--rules", rulesFile,
			"--customer", "c-1", "--database-url", db.URL, "--at", "2025-04-01")
		require.Equal(t, 0, code, stderr)
		require.True(t, strings.HasPrefix(stdout, "To: Ana <ana@example.com>\nSubject: A gift for Ana\n\n"), stdout)
		require.Contains(t, stdout, "here is a code for 5.00 off")
		require.Contains(t, stdout, "Use it at checkout before May 1, 2025.")
		require.Regexp(t, `Your code: [A-Z0-9-]+\n`, stdout)
		require.NotContains(t, stdout, latestCode, "the rule issues a new coupon; the customer's latest is not it")
		require.NotContains(t, stdout, "PREVIEW-CODE")
	})

	t.Run("RuleNameSharedWithTemplate", func(t *testing.T) {
		stdout, _, code := runCLI(t, "templates", "preview", "welcome", "--rules", rulesFile, "--customer", "c-1", "--database-url", db.URL)
		require.Equal(t, 0, code)
		require.Contains(t, stdout, "Subject: Welcome aboard\n", "the rule's subject")
		stdout, _, code = runCLI(t, "templates", "preview", "welcome", "--template", "--rules", rulesFile, "--customer", "c-1", "--database-url", db.URL)
		require.Equal(t, 0, code)
		require.NotContains(t, stdout, "Subject: Welcome aboard\n", "--template: the template's own subject")
	})

	t.Run("RuleWithoutEmail", func(t *testing.T) {
		_, stderr, code := runCLI(t, "templates", "preview", "stage-only", "--rules", rulesFile, "--customer", "c-1", "--database-url", db.URL)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, `rule "stage-only" sends no email`)
	})

	t.Run("UnknownTemplate", func(t *testing.T) {
		_, stderr, code := runCLI(t, "templates", "preview", "nope", "--customer", "c-1", "--database-url", db.URL)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "unknown template")
	})

	require.Equal(t, before, rowCounts(t, db))
}

// TestCustomerSkipsAndHolds shows what did not happen (yet): a rule skipped
// because its condition failed at run time, and deliveries whose dispatch
// job waits for the end of quiet hours or for a retry.
func TestCustomerSkipsAndHolds(t *testing.T) {
	t.Parallel()

	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	seedCustomer(t, db, "c-2", "bo@example.com", at)
	_, err := db.Pool.Exec(ctx, `UPDATE customers SET timezone = 'America/New_York' WHERE id = 'c-2'`)
	require.NoError(t, err)
	st := store.New(db.Pool)
	require.NoError(t, st.InsertRuleSkip(ctx, &store.RuleSkip{CustomerID: "c-2", Rule: "promoter", RuleSetVersion: "abc123",
		EventID: 1, Error: "rule \"promoter\": invalid operation: string >= int (1:24)\n | event.properties.score >= 9\n | .......................^",
		SkippedAt: at.Add(time.Second)}))
	action, _ := json.Marshal(worker.EmailDelivery{Template: "welcome"})
	var ids []int64
	for i, lastError := range []string{"", "451 try again later"} {
		var id int64
		require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO deliveries (customer_id, firing_id, rule, channel, action, status, created_at, attempts, last_error)
			VALUES ('c-2', 0, 'welcome', 'email', $1, 'queued', $2, $3, $4) RETURNING id`, action, at.Add(2*time.Second), i, lastError).Scan(&id))
		ids = append(ids, id)
	}
	// The dispatch jobs as River leaves them: the first snoozed until 08:00
	// New York time, the second retryable after a failed attempt.
	_, err = db.Pool.Exec(ctx, `INSERT INTO river_job (kind, queue, max_attempts, args, state, created_at, attempted_at, scheduled_at, metadata, attempt)
		VALUES ('ciclo.dispatch', 'email', 25, jsonb_build_object('customer_id', 'c-2', 'delivery_id', $1::bigint, 'channel', 'email'),
		        'scheduled', $3, $3, $4, '{"snoozes": 1}', 0),
		       ('ciclo.dispatch', 'email', 25, jsonb_build_object('customer_id', 'c-2', 'delivery_id', $2::bigint, 'channel', 'email'),
		        'retryable', $3, $3, $5, '{}', 1)`,
		ids[0], ids[1], at.Add(3*time.Second), time.Date(2025, 3, 1, 13, 0, 0, 0, time.UTC), at.Add(time.Minute))
	require.NoError(t, err)
	before := rowCounts(t, db)

	stdout, stderr, code := runCLI(t, "customer", "c-2", "--database-url", db.URL)
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Contains(t, lines, `2025-03-01T10:00:01Z  skipped     rule "promoter" skipped (rules abc123), on event #1: condition failed: invalid operation: string >= int (1:24)`, stdout)
	require.Contains(t, lines, fmt.Sprintf(`2025-03-01T10:00:03Z  held        #%d email held until 2025-03-01T13:00:00Z: quiet hours in the customer's time zone (America/New_York) by rule "welcome"`, ids[0]), stdout)
	require.Contains(t, lines, fmt.Sprintf(`2025-03-01T10:00:03Z  held        #%d email held until 2025-03-01T10:01:00Z: retry after a failed attempt (451 try again later) by rule "welcome"`, ids[1]), stdout)
	require.Equal(t, before, rowCounts(t, db))
}
