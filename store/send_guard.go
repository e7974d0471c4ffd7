package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SendGuard keeps an erasure of a delivery's customer from committing while
// the delivery is being sent. The dispatcher takes one right before it hands
// a message to the channel and releases it once the channel has answered;
// EraseCustomer takes the exclusive form of the same per-customer lock (a
// transaction-level advisory lock, not a row lock: ingest, which updates the
// customer's row, never waits for it). So either the send ends before the
// erasure commits, or the guard waits for the erasure's commit and then
// reports the delivery as Erased, and nothing is handed to the channel after
// an erasure committed. An erasure waits for the sends in flight at most, each
// bounded by the channel's timeout.
type SendGuard struct {
	conn *pgxpool.Conn
	// Erased says an erasure committed since the delivery was read: it no
	// longer belongs to the customer (it belongs to AnonymousID now) and must
	// not be sent. The guard holds nothing then; Release is a no-op.
	Erased bool
}

// GuardSend takes the guard for sending delivery ref: one round trip, and a
// pool connection in a transaction until Release.
func GuardSend(ctx context.Context, pool *pgxpool.Pool, ref DeliveryRef) (*SendGuard, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("guard send of delivery %d: %w", ref.ID, err)
	}
	// The re-check is a statement of its own after the lock's: in READ
	// COMMITTED it reads a snapshot taken once the lock is granted.
	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(q("LockErasureShared"), ref.CustomerID)
	var still bool
	b.Queue(q("DeliveryStillTheCustomers"), ref.CustomerID, ref.ID).QueryRow(func(row pgx.Row) error { return row.Scan(&still) })
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		// The connection may be mid-transaction or broken: not reused.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
		return nil, fmt.Errorf("guard send of delivery %d: %w", ref.ID, err)
	}
	g := &SendGuard{conn: conn, Erased: !still}
	if g.Erased {
		g.Release(ctx)
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
		// Closing the connection ends the transaction and its lock too.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
	}
	conn.Release()
}
