package csvimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciclohq/ciclo/store"
)

// BatchSizeDefault is how many good rows go to Postgres per transaction.
const BatchSizeDefault = 20000

// ErrStrict is returned by Run with --strict at the first bad row.
var ErrStrict = errors.New("bad row")

// RunOptions configures Run.
type RunOptions struct {
	// Kind is KindCustomers or KindOrders.
	Kind string
	// Stages are the rule set's stages; InitialStage is where new customers
	// start; Version stamps their transitions.
	Stages       []string
	InitialStage string
	Version      string
	// Now is the import's time: new customers without created_at start
	// then, and no row may be more than a day after it.
	Now time.Time
	// Strict stops at the first bad row instead of reporting it and going on.
	Strict bool
	// BatchSize is rows per transaction; 0 means BatchSizeDefault.
	BatchSize int
	// OnBadRow is called for each bad row (reported, not imported).
	OnBadRow func(*RowError)
	// OnProgress is called after each batch with the bytes of input read.
	OnProgress func(offset int64, s Summary)
}

// Summary is what an import did.
type Summary struct {
	Rows    int64 // data rows read
	Good    int64
	Bad     int64
	Created int64 // customers created, or orders new to ciclo
	Updated int64 // customers changed
	Elapsed time.Duration
}

// Unchanged is how many good rows changed nothing (already imported).
func (s Summary) Unchanged() int64 { return s.Good - s.Created - s.Updated }

// Run imports a customers or orders file in batches, each its own
// transaction, so the good rows of a file land even when some are bad and a
// re-run of the same file changes nothing. Rows are checked as they are
// read and streamed straight into the batch's COPY. Imported orders fire no
// event rule and send nothing; scheduled rules see the facts they set.
func Run(ctx context.Context, pool *pgxpool.Pool, r io.Reader, opts RunOptions) (Summary, error) {
	start := time.Now()
	if opts.BatchSize <= 0 {
		opts.BatchSize = BatchSizeDefault
	}
	rd, err := NewReader(opts.Kind, r, Options{Stages: opts.Stages, Now: opts.Now})
	if err != nil {
		return Summary{}, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("import: %w", err)
	}
	defer conn.Release()
	b := &batcher{rd: rd, opts: &opts, seen: map[string]struct{}{}}
	for {
		more, err := b.fill()
		if err != nil {
			return b.sum, err
		}
		if !more {
			break
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if opts.Kind == KindCustomers {
				c, u, err := store.ImportCustomers(ctx, tx, b.nextCustomer, opts.InitialStage, opts.Version, opts.Now)
				b.sum.Created, b.sum.Updated = b.sum.Created+c, b.sum.Updated+u
				return err
			}
			n, err := store.ImportOrders(ctx, tx, b.nextOrder, opts.InitialStage, opts.Version, opts.Now)
			b.sum.Created += n
			return err
		})
		if err != nil {
			return b.sum, fmt.Errorf("import batch ending at line %d: %w", b.lastLine, err)
		}
		if opts.OnProgress != nil {
			opts.OnProgress(rd.InputOffset(), b.sum)
		}
		if b.strictErr != nil {
			break
		}
	}
	b.sum.Elapsed = time.Since(start)
	return b.sum, b.strictErr
}

// batcher cuts the good rows of a file into batches whose keys (customer
// id; customer and order id) are distinct, as the set-based upserts need:
// a row whose key is already in the batch starts the next one, so that it
// is applied after the row before it, as the file orders them.
type batcher struct {
	rd        *Reader
	opts      *RunOptions
	sum       Summary
	pending   any // the next good row, not yet in a batch
	eof       bool
	n         int // rows in the current batch
	seen      map[string]struct{}
	lastLine  int
	strictErr error
}

// fill reads up to the next good row and reports whether there is one, so
// that no transaction is opened for a batch without rows.
func (b *batcher) fill() (bool, error) {
	b.n = 0
	clear(b.seen)
	if b.pending == nil && !b.eof && b.strictErr == nil {
		row, err := b.read()
		if err != nil {
			return false, err
		}
		b.pending = row
	}
	return b.pending != nil, nil
}

// read returns the next good row, reporting the bad ones on the way, or nil
// at the end of the file (or at the first bad row with --strict).
func (b *batcher) read() (any, error) {
	for {
		row, err := b.rd.Next()
		if errors.Is(err, io.EOF) {
			b.eof = true
			return nil, nil
		}
		var re *RowError
		if errors.As(err, &re) {
			b.sum.Rows++
			b.sum.Bad++
			if b.opts.OnBadRow != nil {
				b.opts.OnBadRow(re)
			}
			if b.opts.Strict {
				b.strictErr = fmt.Errorf("%w (--strict): %w", ErrStrict, re)
				return nil, nil
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		b.sum.Rows++
		b.sum.Good++
		return row, nil
	}
}

// next returns the batch's next good row, or nil at the end of the batch.
func (b *batcher) next() (any, error) {
	if b.n >= b.opts.BatchSize {
		return nil, nil
	}
	row := b.pending
	b.pending = nil
	if row == nil && !b.eof && b.strictErr == nil {
		var err error
		if row, err = b.read(); err != nil {
			return nil, err
		}
	}
	if row == nil {
		return nil, nil
	}
	var key string
	switch v := row.(type) {
	case *Customer:
		key, b.lastLine = v.ID, v.Line
	case *Order:
		key, b.lastLine = v.CustomerID+"\x00"+v.OrderID, v.Line
	}
	if _, dup := b.seen[key]; dup {
		b.pending = row
		return nil, nil
	}
	b.seen[key] = struct{}{}
	b.n++
	return row, nil
}

func (b *batcher) nextCustomer() (*store.ImportCustomer, error) {
	row, err := b.next()
	if row == nil || err != nil {
		return nil, err
	}
	c := importCustomer(row.(*Customer))
	return &c, nil
}

func (b *batcher) nextOrder() (*store.ImportOrder, error) {
	row, err := b.next()
	if row == nil || err != nil {
		return nil, err
	}
	o := importOrder(row.(*Order))
	return &o, nil
}

func importCustomer(c *Customer) store.ImportCustomer {
	attrs := c.Attributes
	if c.AcceptsMarketing != nil {
		if attrs == nil {
			attrs = map[string]any{}
		}
		attrs["accepts_email_marketing"] = *c.AcceptsMarketing
	}
	return store.ImportCustomer{ID: c.ID, Email: c.Email, Name: c.Name, Timezone: c.Timezone,
		CreatedAt: c.CreatedAt, Stage: c.Stage, Attributes: attrs}
}

func importOrder(o *Order) store.ImportOrder {
	return store.ImportOrder{
		CustomerID: o.CustomerID, Key: OrderKey(o.OrderID), Type: o.EventType(), Properties: o.Properties(),
		TotalCents: o.TotalCents(), Counted: o.Counted(), OrderedAt: o.OrderedAt,
	}
}
