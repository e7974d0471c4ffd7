package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SendGuard keeps an erasure of a delivery's customer from committing while
// the delivery is being sent. A dispatch job takes one for its deliveries
// right before it hands their messages to the channel and releases it once
// the channel has answered for all of them;
// EraseCustomer takes the exclusive form of the same per-customer lock (a
// transaction-level advisory lock, not a row lock: ingest, which updates the
// customer's row, never waits for it). So either the send ends before the
// erasure commits, or the guard waits for the erasure's commit and then
// reports the delivery as Erased, and nothing is handed to the channel after
// an erasure committed. An erasure waits at most for the dispatch jobs
// sending to the customer (a batch job's sends, bounded by its timeout).
type SendGuard struct {
	conn *pgxpool.Conn
	// Erased says, for each delivery guarded, that an erasure committed
	// since it was read: it no longer belongs to the customer (it belongs to
	// AnonymousID now) and must not be sent.
	Erased []bool
}

// GuardSend takes the guard for sending the deliveries refs: one round
// trip, and a pool connection in a transaction until Release.
func GuardSend(ctx context.Context, pool *pgxpool.Pool, refs []DeliveryRef) (*SendGuard, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("guard send of %d deliveries: %w", len(refs), err)
	}
	customers, ids := make([]string, len(refs)), make([]int64, len(refs))
	for i, r := range refs {
		customers[i], ids[i] = r.CustomerID, r.ID
	}
	// The re-check is a statement of its own after the locks': in READ
	// COMMITTED it reads a snapshot taken once they are granted.
	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(q("LockErasureShared"), customers)
	var still []int64
	b.Queue(q("DeliveriesStillTheCustomers"), customers, ids).QueryRow(func(row pgx.Row) error { return row.Scan(&still) })
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		// The connection may be mid-transaction or broken: not reused.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
		return nil, fmt.Errorf("guard send of %d deliveries: %w", len(refs), err)
	}
	g := &SendGuard{conn: conn, Erased: make([]bool, len(refs))}
	for i, id := range ids {
		g.Erased[i] = !slices.Contains(still, id)
	}
	return g, nil
}

// Release ends the guard's transaction, letting a waiting erasure commit.
func (g *SendGuard) Release(ctx context.Context) {
	if g.conn == nil {
		return
	}
	conn := g.conn
	g.conn = nil
	// A transaction that only locked and read commits without a WAL flush.
	if _, err := conn.Exec(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		// Closing the connection ends the transaction and its locks too.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
	}
	conn.Release()
}
