package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

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

// sweepRow is the scan target of one sweep row.
type sweepRow struct {
	id, email, name, timezone, stage                             string
	stageAt, created, lastSeen, firstOrder, lastOrder, unsub, cx pgtype.Timestamptz
	orders                                                       int32
	spent                                                        int64
	attrs                                                        map[string]any
}

func (r *sweepRow) targets(fields []string) []any {
	dst := []any{&r.id}
	for _, f := range fields {
		var p any
		switch f {
		case "email":
			p = &r.email
		case "name":
			p = &r.name
		case "timezone":
			p = &r.timezone
		case "stage":
			p = &r.stage
		case "stage_entered_at":
			p = &r.stageAt
		case "created_at":
			p = &r.created
		case "last_seen_at":
			p = &r.lastSeen
		case "first_order_at":
			p = &r.firstOrder
		case "last_order_at":
			p = &r.lastOrder
		case "orders_count":
			p = &r.orders
		case "total_spent":
			p = &r.spent
		case "attributes":
			p = &r.attrs
		case "unsubscribed":
			p = &r.unsub
		case "coupon_expires_at":
			p = &r.cx
		}
		dst = append(dst, p)
	}
	return dst
}

func tsOrZero(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time
}

func (r *sweepRow) customer(c *Customer) {
	*c = Customer{
		ID: r.id, Email: r.email, Name: r.name, Timezone: r.timezone, Stage: r.stage,
		StageEnteredAt: tsOrZero(r.stageAt), CreatedAt: tsOrZero(r.created), LastSeenAt: tsOrZero(r.lastSeen),
		FirstOrderAt: tsOrZero(r.firstOrder), LastOrderAt: tsOrZero(r.lastOrder), OrdersCount: int(r.orders),
		TotalSpent: float64(r.spent) / 100, Attributes: r.attrs, UnsubscribedAt: tsOrZero(r.unsub),
		CouponExpiresAt: tsOrZero(r.cx),
	}
	r.attrs = nil
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
	var r sweepRow
	targets := r.targets(fields)
	for rows.Next() {
		if err := rows.Scan(targets...); err != nil {
			return dst, err
		}
		dst = append(dst, Customer{})
		r.customer(&dst[len(dst)-1])
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

// KeyBounds splits the customers' primary keys into about n ranges of equal
// size, from Postgres' statistics (no table scan): it returns up to n-1
// ascending boundary keys; range i is (bounds[i-1], bounds[i]], the first
// one open below, the last one open above. n is derived from the estimated
// row count and perShard. With no statistics yet it returns none (one range).
func (s *Store) KeyBounds(ctx context.Context, perShard int) ([]string, error) {
	var (
		rows   float64
		bounds []string
	)
	if err := s.db.QueryRow(ctx, q("CustomerKeyHistogram")).Scan(&rows, &bounds); err != nil {
		return nil, fmt.Errorf("customer key histogram: %w", err)
	}
	n := int(math.Ceil(rows / float64(max(perShard, 1))))
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

// SweepFiring is one firing a sweep writes.
type SweepFiring struct {
	CustomerID string
	Rule       string
	Occurrence string
	// Cooldown, when positive, skips the firing if the rule fired for the
	// customer less than Cooldown before the firing time.
	Cooldown time.Duration
	// ID is set by InsertSweepFirings; 0 when the firing was skipped.
	ID int64
}

// InsertSweepFirings records firings in bulk at firedAt with the rule-set
// version and sets the ID of each one written. A firing whose occurrence
// exists already (the unique index: the guarantee against doubles, also
// under concurrency) or that falls within its cooldown is skipped.
func (s *Store) InsertSweepFirings(ctx context.Context, version string, firedAt time.Time, fs []SweepFiring) error {
	if len(fs) == 0 {
		return nil
	}
	cust := make([]string, len(fs))
	rule := make([]string, len(fs))
	occ := make([]string, len(fs))
	cool := make([]int64, len(fs))
	index := make(map[[2]string]int, len(fs))
	for i, f := range fs {
		cust[i], rule[i], occ[i], cool[i] = f.CustomerID, f.Rule, f.Occurrence, f.Cooldown.Milliseconds()
		index[[2]string{f.CustomerID, f.Rule}] = i
	}
	rows, err := s.db.Query(ctx, q("InsertSweepFirings"), cust, rule, occ, cool, version, firedAt)
	if err != nil {
		return fmt.Errorf("insert %d firings: %w", len(fs), err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   int64
			c, r string
		)
		if err := rows.Scan(&id, &c, &r); err != nil {
			return fmt.Errorf("insert %d firings: %w", len(fs), err)
		}
		if i, ok := index[[2]string{c, r}]; ok {
			fs[i].ID = id
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("insert %d firings: %w", len(fs), err)
	}
	return nil
}

// SweepEffects is what a batch of sweep firings does besides recording
// the firings: stage changes with their log, coupons and deliveries. All of
// them belong to firings written in the same transaction, and the
// customers must be locked (LockSweepCustomers).
type SweepEffects struct {
	// Transitions are logged as they are; the stage of each customer ends
	// as the To of its last transition. From must be the customer's current
	// stage or the previous transition's To.
	Transitions []*Transition
	// Coupons are issued with fresh codes (see ApplySweepEffects); each
	// customer's coupon_expires_at is lowered to its earliest expiry.
	Coupons []*Coupon
	// Deliveries are queued.
	Deliveries []*Delivery
}

// ApplySweepEffects writes e in one statement at `at` with the rule-set
// version, and sets the IDs of the coupons and deliveries. Each customer
// row is updated once, for its stage and its coupon expiry together. newCode
// draws a coupon code; the (rare) coupons whose code was taken are left out
// by the statement (ON CONFLICT DO NOTHING) and drawn again alone, up to
// attempts draws in all.
func (s *Store) ApplySweepEffects(ctx context.Context, version string, at time.Time, e *SweepEffects, newCode func() string, attempts int) error {
	if len(e.Transitions) == 0 && len(e.Coupons) == 0 && len(e.Deliveries) == 0 {
		return nil
	}
	if len(e.Coupons) > 0 && attempts < 1 {
		return fmt.Errorf("issue %d coupons: no code draws allowed", len(e.Coupons))
	}

	// One update per customer: final stage and earliest coupon expiry.
	type custUpdate struct {
		stage   string
		expires time.Time
	}
	upd := map[string]*custUpdate{}
	var custOrder []string
	get := func(id string) *custUpdate {
		u, ok := upd[id]
		if !ok {
			u = &custUpdate{}
			upd[id] = u
			custOrder = append(custOrder, id)
		}
		return u
	}
	nt := len(e.Transitions)
	tCust, tFrom, tTo, tRule, tFiring := make([]string, nt), make([]string, nt), make([]string, nt), make([]string, nt), make([]int64, nt)
	for i, t := range e.Transitions {
		tCust[i], tFrom[i], tTo[i], tRule[i], tFiring[i] = t.CustomerID, t.From, t.To, t.Rule, t.FiringID
		get(t.CustomerID).stage = t.To
	}
	nc := len(e.Coupons)
	cCode, cCust, cRule, cKind := make([]string, nc), make([]string, nc), make([]string, nc), make([]string, nc)
	cFiring, cValue, cExpires := make([]int64, nc), make([]float64, nc), make([]*time.Time, nc)
	byCode := make(map[string]*Coupon, nc)
	for i, c := range e.Coupons {
		c.Code, c.CreatedAt = newCode(), at
		cCode[i], cCust[i], cRule[i], cKind[i], cFiring[i], cValue[i] = c.Code, c.CustomerID, c.Rule, c.Kind, c.FiringID, c.Value
		cExpires[i] = nullTime(c.ExpiresAt)
		byCode[c.Code] = c
		if !c.ExpiresAt.IsZero() {
			if u := get(c.CustomerID); u.expires.IsZero() || c.ExpiresAt.Before(u.expires) {
				u.expires = c.ExpiresAt
			}
		}
	}
	uStage, uExpires := make([]*string, len(custOrder)), make([]*time.Time, len(custOrder))
	for i, id := range custOrder {
		u := upd[id]
		if u.stage != "" {
			uStage[i] = &u.stage
		}
		uExpires[i] = nullTime(u.expires)
	}
	nd := len(e.Deliveries)
	dCust, dRule, dChannel := make([]string, nd), make([]string, nd), make([]string, nd)
	dFiring, dAction := make([]int64, nd), make([]json.RawMessage, nd)
	type key struct {
		customer string
		firing   int64
		channel  string
	}
	waiting := map[key][]*Delivery{}
	for i, d := range e.Deliveries {
		dCust[i], dRule[i], dChannel[i], dFiring[i], dAction[i] = d.CustomerID, d.Rule, d.Channel, d.FiringID, d.Action
		d.Status, d.CreatedAt = DeliveryQueued, at
		k := key{d.CustomerID, d.FiringID, d.Channel}
		waiting[k] = append(waiting[k], d)
	}

	rows, err := s.db.Query(ctx, q("ApplySweepEffects"), version, at,
		custOrder, uStage, uExpires,
		tCust, tFrom, tTo, tRule, tFiring,
		cCode, cCust, cRule, cFiring, cKind, cValue, cExpires,
		dCust, dFiring, dRule, dChannel, dAction)
	if err != nil {
		return fmt.Errorf("apply %d sweep firings' effects: %w", len(custOrder), err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			isCoupon bool
			id       int64
			k        key
		)
		if err := rows.Scan(&isCoupon, &id, &k.customer, &k.firing, &k.channel); err != nil {
			return fmt.Errorf("apply %d sweep firings' effects: %w", len(custOrder), err)
		}
		if isCoupon {
			// k.customer is the code here.
			if c := byCode[k.customer]; c != nil {
				c.ID = id
			}
			continue
		}
		// Two deliveries of one firing and channel (two email actions) are
		// interchangeable here: a dispatch job carries customer, id and channel.
		list := waiting[k]
		if len(list) == 0 {
			return errors.New("apply sweep firings' effects: unexpected delivery returned")
		}
		list[0].ID, waiting[k] = id, list[1:]
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("apply %d sweep firings' effects: %w", len(custOrder), err)
	}
	rows.Close()

	var again []*Coupon
	for _, c := range e.Coupons {
		if c.ID == 0 {
			again = append(again, c)
		}
	}
	return s.redrawCoupons(ctx, at, again, newCode, attempts-1)
}

// redrawCoupons issues the coupons whose codes were taken with new codes,
// up to attempts draws each.
func (s *Store) redrawCoupons(ctx context.Context, at time.Time, pending []*Coupon, newCode func() string, attempts int) error {
	for try := 0; len(pending) > 0; try++ {
		if try == attempts {
			return fmt.Errorf("issue %d coupons: code collisions in %d tries", len(pending), attempts+1)
		}
		n := len(pending)
		code, cust, rule, kind := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		firing, value, expires := make([]int64, n), make([]float64, n), make([]*time.Time, n)
		byCode := make(map[string]*Coupon, n)
		for i, c := range pending {
			c.Code = newCode()
			code[i], cust[i], rule[i], kind[i], firing[i], value[i] = c.Code, c.CustomerID, c.Rule, c.Kind, c.FiringID, c.Value
			expires[i] = nullTime(c.ExpiresAt)
			byCode[c.Code] = c
		}
		rows, err := s.db.Query(ctx, q("InsertSweepCoupons"), code, cust, rule, firing, kind, value, expires, at)
		if err != nil {
			return fmt.Errorf("issue %d coupons: %w", n, err)
		}
		for rows.Next() {
			var (
				id int64
				c  string
			)
			if err := rows.Scan(&id, &c); err != nil {
				rows.Close()
				return fmt.Errorf("issue %d coupons: %w", n, err)
			}
			byCode[c].ID = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("issue %d coupons: %w", n, err)
		}
		var again []*Coupon
		for _, c := range pending {
			if c.ID == 0 {
				again = append(again, c)
			}
		}
		pending = again
	}
	return nil
}
