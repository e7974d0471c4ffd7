package store

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciclohq/ciclo/rules"
)

// prefilterSlack widens every pushed-down time bound so that rounding (SQL
// microseconds against Go's float days) can only let more rows through,
// never fewer: the compiled rule decides.
const prefilterSlack = time.Second

// sweepColumns maps the customer fields rules read (expr names) to the
// column expressions a sweep selects. $3 is the evaluation time in
// SweepCustomers ($2 in LockSweepCustomers, see sweepQuery).
var sweepColumns = map[string]string{
	"email":             "email",
	"name":              "name",
	"timezone":          "timezone",
	"stage":             "stage",
	"stage_entered_at":  "stage_entered_at",
	"created_at":        "created_at",
	"last_seen_at":      "last_seen_at",
	"first_order_at":    "first_order_at",
	"last_order_at":     "last_order_at",
	"orders_count":      "orders_count",
	"total_spent":       "total_spent_cents",
	"attributes":        "attributes",
	"unsubscribed":      "unsubscribed_at",
	"coupon_expires_at": "CASE WHEN coupon_expires_at > $NOW THEN coupon_expires_at END",
	// The points fields are computed from the ledger as GetPointsSummary
	// does; no prefilter compares them (they are not in timeColumns).
	"points_balance": "(SELECT COALESCE(sum(pe.amount), 0)::bigint FROM points_entries pe WHERE pe.customer_id = customers.id)",
	"points_pending": "(SELECT COALESCE(sum(pl.remaining), 0)::bigint FROM points_lots pl WHERE pl.customer_id = customers.id" +
		" AND pl.remaining > 0 AND pl.expired_at IS NULL AND pl.available_at > $NOW AND (pl.expires_at IS NULL OR pl.expires_at > $NOW))",
	"points_expiring_at": "(SELECT min(pl.expires_at) FROM points_lots pl WHERE pl.customer_id = customers.id" +
		" AND pl.remaining > 0 AND pl.expired_at IS NULL AND pl.available_at <= $NOW AND pl.expires_at > $NOW)",
	"tier": "tier",
}

// timeColumns are the customer time columns a prefilter may compare; each
// is named like its rules field.
var timeColumns = []string{"stage_entered_at", "created_at", "last_seen_at", "first_order_at", "last_order_at", "coupon_expires_at"}

// SweepQuery is what a sweep reads: which customer fields, and which rows.
// Build it once per sweep shard with NewSweepQuery.
type SweepQuery struct {
	fields    []string
	columns   string
	filter    *rules.Prefilter
	pageSQL   [2]string // without, with an upper key bound
	lockSQL   string
	PushedSQL string // the WHERE the prefilters became ("" when none; parameters numbered as in a bounded page), for logs
}

// NewSweepQuery prepares the reads of a sweep over customers for the given
// fields (rules.Rule.Fields, merged) and prefilter (nil: every customer).
// Unknown field names are ignored. The customer id is always read.
func NewSweepQuery(fields []string, filter *rules.Prefilter) *SweepQuery {
	sq := &SweepQuery{filter: filter}
	var cols strings.Builder
	for _, f := range fields {
		col, ok := sweepColumns[f]
		if !ok {
			continue
		}
		sq.fields = append(sq.fields, f)
		cols.WriteString(", ")
		cols.WriteString(col)
	}
	sq.columns = cols.String()
	page := strings.ReplaceAll(q("SweepCustomers"), "{columns}", strings.ReplaceAll(sq.columns, "$NOW", "$3"))
	sq.lockSQL = strings.ReplaceAll(q("LockSweepCustomers"), "{columns}", strings.ReplaceAll(sq.columns, "$NOW", "$2"))
	sq.pageSQL[0] = strings.ReplaceAll(page, "{upper}", "")
	sq.pageSQL[1] = strings.ReplaceAll(page, "{upper}", " AND id <= $4")
	if filter != nil {
		// The text does not depend on the time, only its parameters do.
		args := make([]any, 4)
		sq.PushedSQL = prefilterSQL(filter, time.Time{}, &args)
	}
	return sq
}

// SweepPage reads the next page of customers for a sweep evaluated at now:
// at most limit customers with ids after `after` and, unless upTo is "", at
// most upTo, in id order (keyset paging). Only the query's fields are set,
// and only rows its prefilter lets through are returned. It appends to dst
// and returns it with the last id read; fewer than limit customers means
// the range is done.
func (s *Store) SweepPage(ctx context.Context, sq *SweepQuery, now time.Time, after, upTo string, limit int, dst []Customer) ([]Customer, error) {
	args := []any{after, limit, now}
	sql := sq.pageSQL[0]
	if upTo != "" {
		sql = sq.pageSQL[1]
		args = append(args, upTo)
	}
	if sq.filter != nil {
		where := prefilterSQL(sq.filter, now, &args)
		sql = strings.ReplaceAll(sql, "{filter}", " AND ("+where+")")
	} else {
		sql = strings.ReplaceAll(sql, "{filter}", "")
	}
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return dst, fmt.Errorf("sweep customers after %q: %w", after, err)
	}
	dst, err = scanSweepRows(rows, sq.fields, dst)
	if err != nil {
		return dst, fmt.Errorf("sweep customers after %q: %w", after, err)
	}
	return dst, nil
}

// LockSweepCustomers locks the customers with the given ids until the
// transaction ends and re-reads the query's fields, in id order, so that a
// sweep judges its matches on current facts. Run it in a transaction.
func (s *Store) LockSweepCustomers(ctx context.Context, sq *SweepQuery, now time.Time, ids []string, dst []Customer) ([]Customer, error) {
	rows, err := s.db.Query(ctx, sq.lockSQL, ids, now)
	if err != nil {
		return dst, fmt.Errorf("lock %d customers: %w", len(ids), err)
	}
	dst, err = scanSweepRows(rows, sq.fields, dst)
	if err != nil {
		return dst, fmt.Errorf("lock %d customers: %w", len(ids), err)
	}
	return dst, nil
}

func scanSweepRows(rows pgx.Rows, fields []string, dst []Customer) ([]Customer, error) {
	defer rows.Close()
	var cc customerColumns
	targets := cc.fieldTargets(fields)
	for rows.Next() {
		if err := rows.Scan(targets...); err != nil {
			return dst, err
		}
		dst = append(dst, Customer{})
		cc.into(&dst[len(dst)-1])
	}
	return dst, rows.Err()
}

// sqlCmp maps a prefilter comparison (expression operators) to SQL.
var sqlCmp = map[string]string{"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "=", "!=": "<>"}

// zeroTimes are the stored times a sweep reads as a zero time, i.e. as
// "never happened" (see tsOrZero): besides NULL, the infinities (pgx scans
// them with a zero Time) and the instant of Go's zero time itself. A prefilter
// asking for an unset time must let all of them through.
const zeroTimes = "'-infinity', 'infinity', '0001-01-01 00:00:00+00'"

// prefilterSQL renders p as a boolean SQL expression over customers,
// appending its parameters to args. It holds for every row whose facts, as
// the sweep reads them, satisfy p; a shape it does not know becomes TRUE.
func prefilterSQL(p *rules.Prefilter, now time.Time, args *[]any) string {
	param := func(v any) string {
		*args = append(*args, v)
		return "$" + strconv.Itoa(len(*args))
	}
	switch p.Op {
	case rules.PrefilterAnd, rules.PrefilterOr:
		parts := make([]string, len(p.Args))
		for i, a := range p.Args {
			parts[i] = "(" + prefilterSQL(a, now, args) + ")"
		}
		return strings.Join(parts, " "+strings.ToUpper(p.Op)+" ")
	}
	switch p.Field {
	case "unsubscribed":
		if b, _ := p.Value.(bool); b == (p.Cmp == "==") {
			return "unsubscribed_at IS NOT NULL"
		}
		return "(unsubscribed_at IS NULL OR unsubscribed_at IN (" + zeroTimes + "))"
	case "stage": // NOT NULL
		switch p.Cmp {
		case "==", "!=":
			return "stage " + sqlCmp[p.Cmp] + " " + param(p.Value)
		case "in":
			return "stage = ANY(" + param(p.Value) + "::text[])"
		}
	case "orders_count": // NOT NULL
		op, ok := sqlCmp[p.Cmp]
		if v, isInt := p.Value.(int); ok && isInt && v >= math.MinInt32 && v <= math.MaxInt32 {
			return "orders_count " + op + " " + param(v)
		}
	default:
		col := p.Field
		if !slices.Contains(timeColumns, col) {
			break
		}
		switch {
		case p.Cmp == "null" && col == "coupon_expires_at":
			// Rules see a coupon expiry already past as unset (the expiry job
			// clears it only every few minutes): keep those rows too, and
			// the other zero times (the earlier ones are past).
			return "(coupon_expires_at IS NULL OR coupon_expires_at <= " + param(now) + " OR coupon_expires_at = 'infinity')"
		case p.Cmp == "not null" && col == "coupon_expires_at":
			return "coupon_expires_at > " + param(now)
		case p.Cmp == "null":
			return "(" + col + " IS NULL OR " + col + " IN (" + zeroTimes + "))"
		case p.Cmp == "not null":
			return col + " IS NOT NULL"
		case !p.FromNow:
		case p.Cmp == "<" || p.Cmp == "<=":
			return col + " <= " + param(now.Add(p.Offset+prefilterSlack))
		case p.Cmp == ">" || p.Cmp == ">=":
			return col + " >= " + param(now.Add(p.Offset-prefilterSlack))
		}
	}
	return "TRUE"
}

// shardMinRows is the fewest customers KeyBounds gives a range when it
// splits a table further than perShard asks, to keep the sweep's workers
// busy: below it a range is a page or two, and splitting buys nothing.
const shardMinRows = 10_000

// KeyBounds splits the customers' primary keys into ranges of about equal
// size, from Postgres' statistics (no table scan): it returns up to n-1
// ascending boundary keys; range i is (bounds[i-1], bounds[i]], the first
// one open below, the last one open above. n is derived from the estimated
// row count and perShard, and raised to minShards (the sweep's workers) as
// long as each range keeps shardMinRows: a table of one shard's size would
// otherwise be swept by one worker, its reads, evaluation and writes taking
// turns on one core. With no statistics yet it returns none (one range).
func (s *Store) KeyBounds(ctx context.Context, perShard, minShards int) ([]string, error) {
	var (
		rows   float64
		bounds []string
	)
	if err := s.db.QueryRow(ctx, q("CustomerKeyHistogram")).Scan(&rows, &bounds); err != nil {
		return nil, fmt.Errorf("customer key histogram: %w", err)
	}
	n := int(math.Ceil(rows / float64(max(perShard, 1))))
	if n < minShards {
		n = max(n, min(minShards, int(rows/shardMinRows)))
	}
	if n <= 1 || len(bounds) < 3 {
		return nil, nil
	}
	// histogram_bounds holds len(bounds)-1 buckets of equal population.
	n = min(n, len(bounds)-1)
	out := make([]string, 0, n-1)
	for i := 1; i < n; i++ {
		b := bounds[i*(len(bounds)-1)/n]
		if len(out) == 0 || out[len(out)-1] != b {
			out = append(out, b)
		}
	}
	return out, nil
}
