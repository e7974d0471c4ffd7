package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrIdempotencyConflict is matched (errors.Is) by an *IdempotencyConflictError.
var ErrIdempotencyConflict = errors.New("idempotency key reused with a different payload")

// NewEvent is one event to ingest with the customer details it carries.
type NewEvent struct {
	CustomerID     string
	Type           string
	IdempotencyKey string // "" = no deduplication
	OccurredAt     time.Time
	ReceivedAt     time.Time
	Properties     map[string]any
	Email          string         // "" keeps the stored one
	Name           string         // "" keeps the stored one
	Timezone       string         // "" keeps the stored one
	Attributes     map[string]any // merged into the customer's attributes
	IsOrder        bool           // counts as an order: bumps orders_count and order dates
	OrderTotal     float64        // added to total_spent, in currency units
	// OrderTypes are the event types that count as orders: an
	// order_cancelled or order_refunded event corrects the facts of the
	// order of one of these types with its properties.order_id. Nil:
	// order_placed.
	OrderTypes []string
	// PayloadHash identifies the payload as sent (the caller chooses the
	// canonical form). A later event with the same idempotency key and a
	// different hash is refused with an *IdempotencyConflictError; nil
	// (here or on the stored event) skips the comparison.
	PayloadHash []byte
}

// IdempotencyConflictError says that an idempotency key came again with a
// payload other than the one it was first used for.
type IdempotencyConflictError struct {
	CustomerID, Key string
	EventID         int64 // the event the key was first used for
	Index           int   // the event's position in the IngestEvents call
	// FirstIndex is the position in the same call of the event that first
	// used the key, or -1 if that event was stored before (a rollback
	// leaves no event EventID then).
	FirstIndex int
}

func (e *IdempotencyConflictError) Error() string {
	return fmt.Sprintf("idempotency key %q of customer %q was used for a different event (id %d)", e.Key, e.CustomerID, e.EventID)
}

// Is makes errors.Is(err, ErrIdempotencyConflict) hold.
func (e *IdempotencyConflictError) Is(target error) bool { return target == ErrIdempotencyConflict }

// Ingested says what IngestEvent did.
type Ingested struct {
	EventID     int64
	Duplicate   bool // the idempotency key was seen before; nothing changed
	NewCustomer bool // the customer was created in InitialStage
}

// IngestEvent stores an event and folds it into its customer's facts. A new
// customer is created in initialStage and that entry is logged as a stage
// transition stamped with version. A duplicate idempotency key changes
// nothing and returns the first event's id, unless its payload differs
// (NewEvent.PayloadHash): that returns an *IdempotencyConflictError, and the
// caller must roll back. Run it in a transaction (WithTx)
// together with the evaluate job insert.
func (s *Store) IngestEvent(ctx context.Context, e *NewEvent, initialStage, version string) (Ingested, error) {
	res, err := s.IngestEvents(ctx, []*NewEvent{e}, initialStage, version)
	if err != nil {
		return Ingested{}, err
	}
	return res[0], nil
}

// IngestEvents is IngestEvent for several events, in order. The
// statements of all events go in one pipelined batch (two per event), so a
// batch of events costs one round trip.
func (s *Store) IngestEvents(ctx context.Context, events []*NewEvent, initialStage, version string) ([]Ingested, error) {
	return s.IngestEventsQueued(ctx, events, initialStage, version, nil)
}

// EvaluationJob is the River job IngestEventsQueued queues for each new
// event, written as River's InsertManyTx writes it (the caller takes the
// values from the job's args and River's defaults).
type EvaluationJob struct {
	Kind, Queue           string
	MaxAttempts, Priority int
}

// NotifyInsert sends River's insert notification for queue, so that an
// idle worker fetches at once. Send it after the jobs' transaction has
// committed, not in it: NOTIFY holds a lock global to the cluster from
// the commit's start to its end, WAL flush included, so every notifying
// transaction in the cluster would wait for that commit's fsync. This one
// commits without waiting for the flush; a notification lost in a crash
// only leaves the jobs to the workers' next poll.
func (s *Store) NotifyInsert(ctx context.Context, queue string) error {
	if _, err := s.db.Exec(ctx, q("NotifyInsert"), queue); err != nil {
		return fmt.Errorf("notify queue %q: %w", queue, err)
	}
	return nil
}

// IngestEventsQueued is IngestEvents that also inserts job (nil: none) for
// each new event into River's river_job table, in the event's own
// statement: together with the commit, an event costs no round trip of its
// own. Run on a pool, the batch is one implicit transaction that commits
// when it ends (synchronously, as any commit), or rolls back entirely on
// any error, an *IdempotencyConflictError included.
//
// Every event is stored by the one statement IngestEventSet. On a pool, a
// run of events (in the order given) whose customers have no other event in
// the call is one statement; each other event is a run of one, in its
// place in the pipeline, since it needs the facts its customer's event
// before it left. A payload conflict in a run of several rolls the batch
// back, and the call is stored again in runs of one, so that the error
// names the event that conflicts and the one its key was first used for.
func (s *Store) IngestEventsQueued(ctx context.Context, events []*NewEvent, initialStage, version string, job *EvaluationJob) ([]Ingested, error) {
	_, inTx := s.db.(pgx.Tx)
	if !inTx && !s.perEvent {
		out, err := s.ingestEventsQueued(ctx, events, initialStage, version, job, true)
		if !errors.Is(err, errSetConflict) {
			return out, err
		}
	}
	return s.ingestEventsQueued(ctx, events, initialStage, version, job, false)
}

// errSetConflict says that a set-based statement met an idempotency
// conflict (and its batch was rolled back).
var errSetConflict = errors.New("idempotency conflict in a set-based ingest")

// setConflict is IngestEventSet's idempotency conflict: the id of the
// event the key was first used for. It is errSetConflict.
type setConflict struct{ first int64 }

func (c *setConflict) Error() string        { return errSetConflict.Error() }
func (c *setConflict) Is(target error) bool { return target == errSetConflict }

func (s *Store) ingestEventsQueued(ctx context.Context, events []*NewEvent, initialStage, version string, job *EvaluationJob, setBased bool) ([]Ingested, error) {
	out := make([]Ingested, len(events))
	// In an implicit transaction a conflict must abort it from the server's
	// side; in the caller's transaction it is reported and the caller rolls back.
	_, inTx := s.db.(pgx.Tx)
	abort := !inTx
	var b pgx.Batch
	// One customer is locked with its event's statements; several are
	// locked first by one statement, in the order they first appear.
	first := firstOfCustomer(events)
	if len(first) > 1 {
		ids, ats := make([]string, len(first)), make([]time.Time, len(first))
		for k, i := range first {
			ids[k], ats[k] = events[i].CustomerID, events[i].OccurredAt
		}
		b.Queue(q("LockCustomers"), ids, initialStage, ats, version).Query(func(rows pgx.Rows) error {
			return scanLockedCustomers(rows, events, first, out)
		})
	}
	var alone []bool // alone[i]: event i's customer has no other event in the call
	if setBased && len(first) > 1 {
		alone = aloneInCall(events, len(first))
	}
	for i := 0; i < len(events); i++ {
		if len(first) == 1 && i == 0 {
			e, res := events[i], &out[i]
			b.Queue(q("LockCustomer"), lockArgs(e, initialStage, version)...).QueryRow(func(row pgx.Row) error {
				return s.lockCustomer(row, e, res)
			})
		}
		// A run of events alone in the call, or a run of one: an event of a
		// customer with several in the call, which sees the facts the
		// customer's earlier events of the call left.
		end := i + 1
		if alone != nil && alone[i] {
			for end < len(events) && alone[end] && end-i < maxSetRun {
				end++
			}
		}
		at, run, res := i, events[i:end], out[i:end]
		sql, args := named("IngestEventSet", ingestSetArgs(run, job, abort))
		b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
			err := scanIngestedSet(rows, run, res)
			var c *setConflict
			if len(run) == 1 && errors.As(err, &c) {
				return idempotencyConflict(run[0], c.first, at, out[:at])
			}
			return err
		})
		i = end - 1
	}
	if err := s.db.SendBatch(ctx, &b).Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// maxSetRun bounds the events of one set-based statement.
const maxSetRun = 5000

// aloneInCall says for each event whether its customer has no other event
// in events (customers is their number of distinct customers).
func aloneInCall(events []*NewEvent, customers int) []bool {
	n := make(map[string]int, customers)
	for _, e := range events {
		n[e.CustomerID]++
	}
	alone := make([]bool, len(events))
	for i, e := range events {
		alone[i] = n[e.CustomerID] == 1
	}
	return alone
}

// ingestSetArgs are IngestEventSet's arrays for a run of events, and the
// job and order types of the call (the run's first event's order types
// stand for all: one call's events come from one ingest configuration).
func ingestSetArgs(run []*NewEvent, job *EvaluationJob, abortOnConflict bool) pgx.NamedArgs {
	n := len(run)
	var (
		ord                                    = make([]int32, n)
		ids, types, props, keys, emails, names = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		zones, attrs                           = make([]string, n), make([]string, n)
		occurred, received                     = make([]time.Time, n), make([]time.Time, n)
		isOrder                                = make([]bool, n)
		totals                                 = make([]int64, n)
		hashes                                 = make([][]byte, n)
	)
	for k, e := range run {
		ord[k] = int32(k)
		ids[k], types[k], keys[k] = e.CustomerID, e.Type, e.IdempotencyKey
		props[k], attrs[k] = jsonObject(e.Properties), jsonObject(e.Attributes)
		emails[k], names[k], zones[k] = e.Email, e.Name, e.Timezone
		occurred[k], received[k] = e.OccurredAt, e.ReceivedAt
		isOrder[k], totals[k], hashes[k] = e.IsOrder, cents(e.OrderTotal), e.PayloadHash
	}
	orderTypes := run[0].OrderTypes
	if orderTypes == nil {
		orderTypes = []string{"order_placed"}
	}
	if job == nil {
		job = &EvaluationJob{}
	}
	return pgx.NamedArgs{
		"ord": ord, "customer_id": ids, "type": types, "properties": props, "occurred_at": occurred,
		"received_at": received, "idempotency_key": keys, "email": emails, "name": names, "timezone": zones,
		"is_order": isOrder, "order_total_cents": totals, "attributes": attrs, "payload_hash": hashes,
		"order_types": orderTypes, "job_kind": job.Kind, "job_queue": job.Queue,
		"job_max_attempts": job.MaxAttempts, "job_priority": job.Priority, "abort_on_conflict": abortOnConflict,
	}
}

// jsonObject is m as JSON text, {} for nil, as pgx would encode it for a
// jsonb parameter.
func jsonObject(m map[string]any) string {
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil {
		// The per-event statement would fail to encode it as well; let the
		// database refuse the batch.
		return ""
	}
	return string(b)
}

// scanIngestedSet reads IngestEventSet's answer into res, one row per event
// of run, found by its customer (one event each); a payload conflict is
// errSetConflict.
func scanIngestedSet(rows pgx.Rows, run []*NewEvent, res []Ingested) error {
	defer rows.Close()
	at := make(map[string]int, len(run))
	for k, e := range run {
		at[e.CustomerID] = k
	}
	n := 0
	for rows.Next() {
		var (
			customerID     string
			eventID, dupID *int64
			conflict       bool
		)
		if err := rows.Scan(&customerID, &eventID, &dupID, &conflict); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		if conflict {
			return &setConflict{first: *dupID}
		}
		k, ok := at[customerID]
		if !ok {
			return fmt.Errorf("insert events: answer for customer %q not in the batch", customerID)
		}
		delete(at, customerID)
		switch {
		case dupID != nil:
			res[k] = Ingested{EventID: *dupID, Duplicate: true}
		case eventID != nil:
			res[k].EventID = *eventID
		}
		n++
	}
	if err := rows.Err(); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == sqlstateIdempotencyConflict {
			first, _ := strconv.ParseInt(pe.Detail, 10, 64)
			return &setConflict{first: first}
		}
		return fmt.Errorf("insert events: %w", err)
	}
	for id := range at {
		// The customer's row lock makes this impossible; the implicit
		// transaction commits regardless of this error.
		return fmt.Errorf("insert event of %q: not stored", id)
	}
	return nil
}

// firstOfCustomer returns the index of each customer's first event, in
// the order of the events.
func firstOfCustomer(events []*NewEvent) []int {
	seen := make(map[string]bool, len(events))
	var first []int
	for i, e := range events {
		if !seen[e.CustomerID] {
			seen[e.CustomerID] = true
			first = append(first, i)
		}
	}
	return first
}

// scanLockedCustomers reads LockCustomers' answer, the customers it
// created, into the answers of each customer's first event (the others'
// customers are not new).
func scanLockedCustomers(rows pgx.Rows, events []*NewEvent, first []int, out []Ingested) error {
	defer rows.Close()
	created := make(map[string]bool, len(first))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("lock customers: %w", err)
		}
		created[id] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock customers: %w", err)
	}
	for _, i := range first {
		out[i].NewCustomer = created[events[i].CustomerID]
	}
	return nil
}

func lockArgs(e *NewEvent, initialStage, version string) []any {
	return []any{e.CustomerID, initialStage, e.OccurredAt, version}
}

func (s *Store) lockCustomer(row pgx.Row, e *NewEvent, res *Ingested) error {
	if err := row.Scan(&res.NewCustomer); err != nil {
		return fmt.Errorf("lock customer %q: %w", e.CustomerID, err)
	}
	return nil
}

// sqlstateIdempotencyConflict is raised by ciclo_idempotency_conflict
// (migration 00024) when a key comes again with another payload.
const sqlstateIdempotencyConflict = "CI409"

// idempotencyConflict is the error for the event at index of a call whose
// key was first used for event first; before are the answers before it.
func idempotencyConflict(e *NewEvent, first int64, index int, before []Ingested) error {
	firstIndex := -1
	for j, r := range before {
		if !r.Duplicate && r.EventID == first {
			firstIndex = j
		}
	}
	return &IdempotencyConflictError{CustomerID: e.CustomerID, Key: e.IdempotencyKey, EventID: first, Index: index, FirstIndex: firstIndex}
}

// PendingEvent is an event awaiting evaluation with the facts its rules see.
type PendingEvent struct {
	Event
	Facts *Customer // the customer right after this event
}

// factsJSON is the snapshot as to_jsonb(customers row) writes it.
type factsJSON struct {
	ID              string         `json:"id"`
	Email           string         `json:"email"`
	Name            string         `json:"name"`
	Timezone        string         `json:"timezone"`
	Stage           string         `json:"stage"`
	StageEnteredAt  *time.Time     `json:"stage_entered_at"`
	CreatedAt       time.Time      `json:"created_at"`
	LastSeenAt      *time.Time     `json:"last_seen_at"`
	FirstOrderAt    *time.Time     `json:"first_order_at"`
	LastOrderAt     *time.Time     `json:"last_order_at"`
	OrdersCount     int            `json:"orders_count"`
	TotalSpentCents int64          `json:"total_spent_cents"`
	Attributes      map[string]any `json:"attributes"`
	UnsubscribedAt  *time.Time     `json:"unsubscribed_at"`
}

func (f *factsJSON) customer() *Customer {
	return &Customer{
		ID: f.ID, Email: f.Email, Name: f.Name, Timezone: f.Timezone, Stage: f.Stage,
		StageEnteredAt: timeOrZero(f.StageEnteredAt), CreatedAt: f.CreatedAt, LastSeenAt: timeOrZero(f.LastSeenAt),
		FirstOrderAt: timeOrZero(f.FirstOrderAt), LastOrderAt: timeOrZero(f.LastOrderAt), OrdersCount: f.OrdersCount,
		TotalSpent: float64(f.TotalSpentCents) / 100, Attributes: f.Attributes, UnsubscribedAt: timeOrZero(f.UnsubscribedAt),
	}
}

// ClaimForEvaluation locks the customer's row until the transaction ends
// and claims the customer's events not evaluated yet
// with ids up to upTo, oldest first, marking them evaluated at at (a
// rollback leaves them pending). Both statements go in one pipelined batch:
// one round trip. It returns
// ErrCustomerNotFound if there is no customer.
//
// With asyncCommit the transaction's commit does not wait for its WAL to
// reach disk (synchronous_commit off, set in the same batch). Only for
// work whose effects nobody outside Postgres relies on before a later
// synchronous commit: WAL is flushed in order, so that commit makes this
// one durable too, and a crash before it loses both together.
func (s *Store) ClaimForEvaluation(ctx context.Context, customerID string, upTo int64, at time.Time, asyncCommit bool) (string, []*PendingEvent, error) {
	var (
		stage   string
		pending []*PendingEvent
		b       pgx.Batch
	)
	if asyncCommit {
		b.Queue(q("AsyncCommit"))
	}
	b.Queue(q("LockCustomerStage"), customerID).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&stage); err != nil {
			return fmt.Errorf("lock customer %q: %w", customerID, wrapNoRows(err, ErrCustomerNotFound))
		}
		return nil
	})
	b.Queue(q("ClaimPendingEvents"), customerID, upTo, at).Query(func(rows pgx.Rows) error {
		var err error
		pending, err = scanPending(rows, customerID)
		return err
	})
	if err := s.db.SendBatch(ctx, &b).Close(); err != nil {
		return "", nil, err
	}
	return stage, pending, nil
}

func scanPending(rows pgx.Rows, customerID string) ([]*PendingEvent, error) {
	defer rows.Close()
	var out []*PendingEvent
	for rows.Next() {
		var (
			e     PendingEvent
			facts *factsJSON
		)
		if err := rows.Scan(&e.ID, &e.Type, &e.Properties, &e.OccurredAt, &facts); err != nil {
			return nil, fmt.Errorf("pending events of %q: %w", customerID, err)
		}
		e.CustomerID = customerID
		if facts != nil {
			e.Facts = facts.customer()
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending events of %q: %w", customerID, err)
	}
	return out, nil
}

// CustomerOfEventKey returns the customer of the first event stored under
// idempotency key key, whatever its customer: an integration uses it to find
// the customer of an order whose refund payload names none.
// ErrCustomerNotFound when no event has the key.
func (s *Store) CustomerOfEventKey(ctx context.Context, key string) (string, error) {
	var id string
	err := s.db.QueryRow(ctx, q("CustomerOfEventKey"), key).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrCustomerNotFound
	}
	if err != nil {
		return "", fmt.Errorf("find customer of event key %q: %w", key, err)
	}
	return id, nil
}

// EventKeyKnown reports whether customerID has an event stored under
// idempotency key key.
func (s *Store) EventKeyKnown(ctx context.Context, customerID, key string) (bool, error) {
	var (
		id   int64
		hash []byte
	)
	err := s.db.QueryRow(ctx, q("GetEventIDByKey"), customerID, key).Scan(&id, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find event key %q: %w", key, err)
	}
	return true, nil
}
