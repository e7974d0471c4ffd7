package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Delivery statuses.
const (
	DeliveryQueued     = "queued"
	DeliverySent       = "sent"
	DeliverySuppressed = "suppressed"
	DeliverySkippedCap = "skipped_cap"
	DeliveryFailed     = "failed"
)

// Delivery is one action of a firing sent through a channel.
type Delivery struct {
	ID             int64
	CustomerID     string
	FiringID       int64
	Rule           string
	Channel        string          // email or webhook
	Action         json.RawMessage // the action as the rule stated it when it fired
	Status         string
	Attempts       int
	LastError      string
	ProviderID     string
	Response       string // excerpt of the last reply, or the outbox file
	CreatedAt      time.Time
	EventID        int64 // the firing's event; 0 for scheduled firings
	RuleSetVersion string
	// MessageKey is a random UUID drawn when the delivery was queued; an
	// email's Message-ID is built from it, so it is unique everywhere and the
	// same on every retry. "" for deliveries finished before it existed.
	MessageKey string
	// BounceClass is how the last SMTP rejection was classified (see
	// channels.Bounce*); "" if the last attempt was not rejected.
	BounceClass string
	// EnhancedStatus is the last rejection's RFC 3463 code, e.g. "5.1.1".
	EnhancedStatus string
}

// GetDelivery reads one delivery. It returns ErrDeliveryNotFound if there is none.
func (s *Store) GetDelivery(ctx context.Context, customerID string, id int64) (*Delivery, error) {
	var (
		d       Delivery
		eventID *int64
	)
	err := s.db.QueryRow(ctx, q("GetDelivery"), customerID, id).Scan(&d.ID, &d.CustomerID, &d.FiringID, &d.Rule,
		&d.Channel, &d.Action, &d.Status, &d.Attempts, &d.LastError, &d.ProviderID, &d.Response, &d.CreatedAt, &eventID, &d.RuleSetVersion,
		&d.MessageKey, &d.BounceClass, &d.EnhancedStatus)
	if err != nil {
		return nil, fmt.Errorf("get delivery %d: %w", id, wrapNoRows(err, ErrDeliveryNotFound))
	}
	if eventID != nil {
		d.EventID = *eventID
	}
	return &d, nil
}

// Outcome is the result of one delivery attempt.
type Outcome struct {
	Delivery     DeliveryRef // the delivery it is recorded on
	Status       string
	Attempted    bool // an attempt was made (counts toward attempts)
	Error        string
	ProviderID   string
	ResponseCode int    // 0: none
	Response     string // excerpt of the reply; "" keeps the stored one
	At           time.Time
	// Bounce, when set, is an address to suppress as bounced together with
	// the outcome: its server refused the recipient.
	Bounce string
	// BounceClass and EnhancedStatus record how an SMTP rejection was
	// classified; "" when there was none.
	BounceClass, EnhancedStatus string
}

// DeliveryRef names one delivery.
type DeliveryRef struct {
	CustomerID string
	ID         int64
}

// FinishDeliveries records attempts' outcomes, each on its delivery, and
// their bounce suppressions in one round trip: the statements are pipelined
// in one implicit transaction (or run in the store's). Outside a transaction
// it commits without waiting for the WAL flush: a crash can at worst lose
// the last outcomes, and those deliveries are then sent again, which a crash
// between sending and recording can cause anyway.
func (s *Store) FinishDeliveries(ctx context.Context, outs []Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	db, ok := s.db.(batcher)
	if !ok {
		return fmt.Errorf("record outcomes of %d deliveries: store cannot send a batch", len(outs))
	}
	var b pgx.Batch
	if _, inTx := s.db.(pgx.Tx); !inTx {
		b.Queue(q("AsyncCommit"))
	}
	for _, o := range outs {
		attempts := 0
		if o.Attempted {
			attempts = 1
		}
		var code *int
		if o.ResponseCode != 0 {
			code = &o.ResponseCode
		}
		b.Queue(q("FinishDelivery"), pgx.NamedArgs{
			"customer_id":     o.Delivery.CustomerID,
			"id":              o.Delivery.ID,
			"status":          o.Status,
			"attempts":        attempts,
			"last_error":      pgText(o.Error),
			"provider_id":     pgText(o.ProviderID),
			"response_code":   code,
			"at":              o.At,
			"response":        pgText(o.Response),
			"bounce_class":    o.BounceClass,
			"enhanced_status": pgText(o.EnhancedStatus),
		})
		if o.Bounce != "" {
			b.Queue(q("AddSuppression"), o.Bounce, SuppressBounced, pgText(o.Error), o.At)
		}
	}
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		if len(outs) == 1 {
			return fmt.Errorf("record delivery %d outcome: %w", outs[0].Delivery.ID, err)
		}
		return fmt.Errorf("record outcomes of %d deliveries: %w", len(outs), err)
	}
	return nil
}

// Cap is a frequency-cap decision for one email delivery.
type Cap struct {
	// Delivery is the email delivery to claim.
	Delivery DeliveryRef
	// Max is the number of marketing emails allowed in the window.
	Max int
	// Since is the start of the window: emails sent after it count.
	Since time.Time
	// StaleBefore bounds claims: a claim older than this (its sender
	// crashed mid-send) no longer counts.
	StaleBefore time.Time
	// Now is recorded as the claim time.
	Now time.Time
}

// CapClaim is the result of a frequency-cap decision.
type CapClaim struct {
	// Counted is the number of emails that counted against the cap.
	Counted int
	// Claimed says the delivery may be sent.
	Claimed bool
}

// ClaimUnderCap decides, for each of caps in order, whether a customer's
// email delivery may be sent under the frequency cap and, if so, claims it
// so that it counts against the cap while being sent.
//
// Concurrent dispatches for one customer must not both see "2 of 3 sent"
// and both send. The decisions therefore run after per-customer advisory
// transaction locks (LockCustomerSends) in the same transaction: dispatches
// for one customer decide one after the other, and each sees the claims the
// earlier ones committed, as does each decision the earlier ones in caps.
// The locks are released at commit, before the emails are sent, so no lock
// or connection is held across an SMTP exchange. All statements go in one
// pipelined batch, an implicit transaction: one round trip; each
// customer's first delivery is decided by one set-based statement for all
// of caps, later ones of the same customer each by one after it. Recording
// the delivery's outcome (FinishDeliveries) clears the claim.
func (s *Store) ClaimUnderCap(ctx context.Context, caps []Cap) ([]CapClaim, error) {
	out := make([]CapClaim, len(caps))
	if len(caps) == 0 {
		return out, nil
	}
	db, ok := s.db.(batcher)
	if !ok {
		return nil, fmt.Errorf("claim %d deliveries: store cannot send a batch", len(caps))
	}
	custs := make([]string, len(caps))
	for i, c := range caps {
		custs[i] = c.Delivery.CustomerID
	}
	var b pgx.Batch
	if _, inTx := s.db.(pgx.Tx); !inTx {
		// A claim need not survive a crash of Postgres: it only marks an
		// email in flight, and the commit makes it visible to the next
		// decision (and releases the locks) without waiting for the WAL
		// flush. A crash loses the claims with the outcomes recorded as
		// asynchronously (FinishDeliveries), no more.
		b.Queue(q("AsyncCommit"))
	}
	b.Queue(q("LockCustomerSends"), custs)
	// Each customer's first delivery is decided in one statement for all;
	// a customer's later ones each in a statement of their own after it,
	// so each sees the claims decided before it.
	var (
		first     = make(map[string]bool, len(caps))
		set, rest []int
		cols      struct {
			custs              []string
			ids                []int64
			since, stale, nows []time.Time
			maxes              []int32
		}
	)
	for i, c := range caps {
		if first[c.Delivery.CustomerID] {
			rest = append(rest, i)
			continue
		}
		first[c.Delivery.CustomerID] = true
		set = append(set, i)
		cols.custs, cols.ids = append(cols.custs, c.Delivery.CustomerID), append(cols.ids, c.Delivery.ID)
		cols.since, cols.stale = append(cols.since, c.Since), append(cols.stale, c.StaleBefore)
		cols.maxes, cols.nows = append(cols.maxes, int32(c.Max)), append(cols.nows, c.Now)
	}
	b.Queue(q("ClaimUnderCapMany"), cols.custs, cols.ids, cols.since, cols.stale, cols.maxes, cols.nows).Query(func(rows pgx.Rows) error {
		n := 0
		for rows.Next() {
			if n == len(set) {
				return fmt.Errorf("claim under frequency cap: more than the %d rows asked for", len(set))
			}
			if err := rows.Scan(&out[set[n]].Counted, &out[set[n]].Claimed); err != nil {
				return err
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if n != len(set) {
			return fmt.Errorf("claim under frequency cap: %d rows for %d deliveries", n, len(set))
		}
		return nil
	})
	for _, i := range rest {
		c := caps[i]
		b.Queue(q("ClaimUnderCap"), c.Delivery.CustomerID, c.Delivery.ID, c.Since, c.StaleBefore, c.Max, c.Now).QueryRow(func(row pgx.Row) error {
			return row.Scan(&out[i].Counted, &out[i].Claimed)
		})
	}
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("claim %d deliveries under frequency cap: %w", len(caps), err)
	}
	return out, nil
}

// Dispatch is everything sending one delivery needs.
type Dispatch struct {
	Delivery *Delivery
	Customer *Customer
	// Suppressed is why the customer's address is suppressed; "" if it is not.
	Suppressed string
	// Event is the firing's event; nil for scheduled firings.
	Event *Event
	// Coupon is the first coupon the firing issued; nil if none.
	Coupon *Coupon
	// OriginAt is when the firing's event was received, or the delivery
	// created for scheduled firings: where its latency counts from.
	OriginAt time.Time
	// Points are the customer's balance and next expiry when the delivery
	// was queued, and its tier (Pending is not read).
	Points PointsSummary

	// lowerEmail is the address as Postgres lower-cases it, to look up the
	// hash an erasure may have left of it.
	lowerEmail string
}

// GetDispatches reads deliveries with their customers, suppressions, events
// and coupons in one round trip (one pipelined query per delivery: each
// keeps its cached plan, which a query over arrays of ids would not):
// element i is the delivery refs[i] names, nil if there is none.
func (s *Store) GetDispatches(ctx context.Context, refs []DeliveryRef, now time.Time) ([]*Dispatch, error) {
	db, ok := s.db.(batcher)
	if !ok {
		return nil, fmt.Errorf("get %d deliveries: store cannot send a batch", len(refs))
	}
	var b pgx.Batch
	out := make([]*Dispatch, len(refs))
	for i, r := range refs {
		b.Queue(q("GetDispatch"), r.CustomerID, r.ID, now).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				dp, err := scanDispatch(rows)
				if err != nil {
					return err
				}
				out[i] = dp
			}
			return rows.Err()
		})
	}
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("get %d deliveries: %w", len(refs), err)
	}
	if err := s.erasedSuppressions(ctx, out); err != nil {
		return nil, fmt.Errorf("get %d deliveries: %w", len(refs), err)
	}
	return out, nil
}

// erasedSuppressions marks the dispatches whose address was erased (kept
// as its hash in suppressions, see EraseCustomer) suppressed for that
// reason, which wins over the address's own suppression: an erased person
// who comes back under another id is still never mailed. One statement for
// the batch; the hashes are computed here, from the addresses as Postgres
// lower-cased them (SuppressErasedAddress hashes the same bytes).
func (s *Store) erasedSuppressions(ctx context.Context, dps []*Dispatch) error {
	byHash := make(map[string][]*Dispatch, len(dps))
	hashes := make([]string, 0, len(dps))
	for _, dp := range dps {
		if dp == nil || dp.lowerEmail == "" {
			continue
		}
		h := erasedHashOfLower(dp.lowerEmail)
		if _, ok := byHash[h]; !ok {
			hashes = append(hashes, h)
		}
		byHash[h] = append(byHash[h], dp)
	}
	if len(hashes) == 0 {
		return nil
	}
	rows, err := s.db.Query(ctx, q("ErasedSuppressions"), hashes)
	if err != nil {
		return fmt.Errorf("read erased addresses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h, reason string
		if err := rows.Scan(&h, &reason); err != nil {
			return fmt.Errorf("read erased addresses: %w", err)
		}
		for _, dp := range byHash[h] {
			dp.Suppressed = reason
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read erased addresses: %w", err)
	}
	return nil
}

// scanDispatch scans one row of GetDispatches.
func scanDispatch(rows pgx.Rows) (*Dispatch, error) {
	var (
		d         Delivery
		cc        customerColumns
		eventID   *int64
		reason    string
		evType    *string
		evProps   map[string]any
		evAt      *time.Time
		cpCode    *string
		cpKind    *string
		cpValue   *float64
		cpExpires *time.Time
		originAt  time.Time
		points    PointsSummary
		nextExp   *time.Time
		lower     string
	)
	targets := []any{&d.ID, &d.CustomerID, &d.FiringID, &d.Rule, &d.Channel, &d.Action, &d.Status, &d.Attempts,
		&d.LastError, &d.ProviderID, &d.Response, &d.CreatedAt, &eventID, &d.RuleSetVersion,
		&d.MessageKey, &d.BounceClass, &d.EnhancedStatus}
	targets = append(targets, cc.targets()...)
	targets = append(targets, &reason, &evType, &evProps, &evAt, &cpCode, &cpKind, &cpValue, &cpExpires, &originAt,
		&points.Balance, &nextExp, &points.Tier, &lower)
	if err := rows.Scan(targets...); err != nil {
		return nil, err
	}
	if eventID != nil {
		d.EventID = *eventID
	}
	points.NextExpiry = timeOrZero(nextExp)
	dp := &Dispatch{Delivery: &d, Customer: cc.customer(), Suppressed: reason, OriginAt: originAt, Points: points, lowerEmail: lower}
	if evType != nil {
		dp.Event = &Event{ID: d.EventID, CustomerID: d.CustomerID, Type: *evType, Properties: evProps, OccurredAt: timeOrZero(evAt)}
	}
	if cpCode != nil {
		dp.Coupon = &Coupon{Code: *cpCode, CustomerID: d.CustomerID, Rule: d.Rule, FiringID: d.FiringID,
			Kind: *cpKind, Value: *cpValue, ExpiresAt: timeOrZero(cpExpires)}
	}
	return dp, nil
}

// FirstDelivery reads a customer's first delivery. It returns
// ErrDeliveryNotFound if there is none yet.
func (s *Store) FirstDelivery(ctx context.Context, customerID string) (*Delivery, error) {
	var id int64
	if err := s.db.QueryRow(ctx, q("FirstDeliveryID"), customerID).Scan(&id); err != nil {
		return nil, fmt.Errorf("first delivery of %q: %w", customerID, wrapNoRows(err, ErrDeliveryNotFound))
	}
	return s.GetDelivery(ctx, customerID, id)
}

// pgText makes s storable as Postgres text: a server's reply may hold NUL
// bytes or invalid UTF-8, which would fail the whole write of a batch.
func pgText(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// CountMarketingSent returns, per customer id, how many marketing emails
// were sent to the customer since since (for frequency cap dry runs).
func (s *Store) CountMarketingSent(ctx context.Context, customerIDs []string, since time.Time) (map[string]int, error) {
	rows, err := s.db.Query(ctx, q("CountMarketingSent"), customerIDs, since)
	if err != nil {
		return nil, fmt.Errorf("count marketing emails of %d customers: %w", len(customerIDs), err)
	}
	defer rows.Close()
	out := make(map[string]int, len(customerIDs))
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count marketing emails: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}
