package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// NoFireRules are ten scheduled rules of the usual shapes whose conditions
// no customer of CopyCustomers meets (ages are below 1,000 days).
const NoFireRules = `version: 1
rules:
  - {name: r1, schedule: "0 9 * * *", cooldown: 90d, when: 'days_since(customer.last_order_at) >= 1000 && customer.stage in ["conversion", "retention", "loyalty"]', actions: [{stage: at_risk}]}
  - {name: r2, schedule: "0 9 * * *", cooldown: 90d, when: 'days_since(customer.last_seen_at) >= 1001', actions: [{stage: at_risk}]}
  - {name: r3, schedule: "0 9 * * *", cooldown: 90d, when: 'customer.orders_count > 100000', actions: [{stage: loyalty}]}
  - {name: r4, schedule: "0 9 * * *", cooldown: 7d, when: 'days_until(customer.coupon_expires_at) <= 3', actions: [{email: {template: bonus_expiring}}]}
  - {name: r5, schedule: "0 9 * * *", cooldown: 365d, when: 'days_since(customer.created_at) >= 5000', actions: [{email: {template: repeat_purchase}}]}
  - {name: r6, schedule: "0 9 * * *", cooldown: 90d, when: 'customer.stage == "churned" && !customer.unsubscribed', actions: [{coupon: {percent: 20, expires_in: 30d}}]}
  - {name: r7, schedule: "0 9 * * *", cooldown: 90d, when: 'hours_since(customer.last_order_at) >= 24100', actions: [{stage: churned}]}
  - {name: r8, schedule: "0 9 * * *", cooldown: 90d, when: 'days_since(customer.first_order_at) >= 3000 && customer.orders_count >= 2', actions: [{stage: loyalty}]}
  - {name: r9, schedule: "0 9 * * *", cooldown: 30d, when: 'customer.stage == "at_risk" && days_since(customer.stage_entered_at) >= 2000', actions: [{stage: churned}]}
  - {name: r10, schedule: "0 9 * * *", cooldown: 30d, when: 'has(customer.last_order_at) && days_since(customer.last_order_at) < 0', actions: [{stage: retention}]}
`

// FullScanRule cannot be pushed into SQL: every row is evaluated.
const FullScanRule = `  - {name: r11, schedule: "0 9 * * *", cooldown: 30d, when: 'customer.total_spent > 1e12', actions: [{stage: loyalty}]}
`

// tenPercentRule fires for customers whose last order is 900–999 days old:
// 10% of CopyCustomers' customers.
const tenPercentRule = `  - {name: r10, schedule: "0 9 * * *", cooldown: 30d, when: 'days_since(customer.last_order_at) >= 900 && customer.stage == "retention"', actions: [{stage: at_risk}, {coupon: {percent: 20, expires_in: 30d}}, {email: {template: win_back}}]}
`

// TenPercentRules is NoFireRules with its tenth rule replaced by one that
// fires for 10% of CopyCustomers' customers: a stage move, a coupon and an email.
func TenPercentRules() string {
	return NoFireRules[:strings.Index(NoFireRules, "  - {name: r10")] + tenPercentRule
}

// CopyCustomers loads n synthetic customers with COPY, generated on the fly,
// and vacuums the table. Customer i (id c-%08d) is in retention and last
// ordered i%1000 days (and an hour) before now.
func CopyCustomers(ctx context.Context, pool *pgxpool.Pool, n int, now time.Time) error {
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		id := fmt.Sprintf("c-%08d", i)
		age := time.Duration(i%1000) * 24 * time.Hour
		last := now.Add(-age - time.Hour)
		first := last.Add(-30 * 24 * time.Hour)
		row := []any{id, id + "@example.com", "Customer " + id, "Europe/Madrid", "retention", first,
			first, last, first, last, 2 + i%7, int64(1000 + i%50000), `{"plan":"basic"}`}
		i++
		return row, nil
	})
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"customers"},
		[]string{"id", "email", "name", "timezone", "stage", "stage_entered_at", "created_at", "last_seen_at",
			"first_order_at", "last_order_at", "orders_count", "total_spent_cents", "attributes"}, src); err != nil {
		return fmt.Errorf("copy %d customers: %w", n, err)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE customers"); err != nil {
		return fmt.Errorf("vacuum customers: %w", err)
	}
	return nil
}

// ResetFirings undoes what earlier sweeps did, so that every run fires for
// the same customers on a vacuumed table: it deletes firings, transitions,
// coupons, deliveries and dispatch jobs (the email queue must be paused),
// puts every customer back in retention with no coupon, and vacuums.
func ResetFirings(ctx context.Context, pool *pgxpool.Pool) error {
	for _, sql := range []string{
		"TRUNCATE rule_firings, stage_transitions, coupons, deliveries",
		"DELETE FROM river_job WHERE kind IN ('ciclo.dispatch', 'ciclo.dispatch_batch')",
		"UPDATE customers SET stage = 'retention', coupon_expires_at = NULL WHERE stage <> 'retention' OR coupon_expires_at IS NOT NULL",
		"VACUUM ANALYZE customers",
		"VACUUM ANALYZE river_job",
		"CHECKPOINT",
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			return fmt.Errorf("reset firings: %s: %w", sql, err)
		}
	}
	return nil
}

// CopyOutRate is how fast Postgres streams the whole customers table out
// (COPY ... TO STDOUT), in rows per second; the table must hold n rows.
func CopyOutRate(ctx context.Context, pool *pgxpool.Pool, n int) (float64, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("copy out: %w", err)
	}
	defer conn.Release()
	start := time.Now()
	tag, err := conn.Conn().PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT * FROM customers) TO STDOUT")
	if err != nil {
		return 0, fmt.Errorf("copy out: %w", err)
	}
	if tag.RowsAffected() != int64(n) {
		return 0, fmt.Errorf("copy out: %d rows, want %d", tag.RowsAffected(), n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
