package csvimport

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/ciclohq/ciclo/store"
)

// BatchSizeDefault is how many good rows go to Postgres per transaction.
const BatchSizeDefault = 20000

// ConnectionsDefault is how many connections an import writes on: one
// backend's CPU bounds a single connection's import (the writes of
// customers, transitions and events with their indexes and foreign keys),
// and two share a 2-core machine's Postgres (100k customers: 5.6 s on two
// against 9.3 s on one, on a loaded machine).
const ConnectionsDefault = 2

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
	// Connections is how many connections write at once, each the rows of
	// its share of the customers; 0 means ConnectionsDefault.
	Connections int
	// OnBadRow is called for each bad row (reported, not imported), in file
	// order, from the goroutine that called Run.
	OnBadRow func(*RowError)
	// OnProgress is called after each batch with the bytes of input read,
	// one call at a time.
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
// read and handed to one of opts.Connections lanes by their customer id;
// each lane streams its rows into its batches' COPY on its own connection.
// A customer's rows all go to one lane, in file order, so they are applied
// as the file orders them; different customers' rows share nothing a
// concurrent lane writes. Imported orders fire no event rule and send
// nothing; scheduled rules see the facts they set.
func Run(ctx context.Context, pool *pgxpool.Pool, r io.Reader, opts RunOptions) (Summary, error) {
	start := time.Now()
	if opts.BatchSize <= 0 {
		opts.BatchSize = BatchSizeDefault
	}
	if opts.Connections <= 0 {
		opts.Connections = ConnectionsDefault
	}
	rd, err := NewReader(opts.Kind, r, Options{Stages: opts.Stages, Now: opts.Now})
	if err != nil {
		return Summary{}, err
	}
	t := &tally{onProgress: opts.OnProgress}
	g, gctx := errgroup.WithContext(ctx)
	lanes := make([]*lane, opts.Connections)
	for i := range lanes {
		l := &lane{rows: make(chan any, 1024), opts: &opts, tally: t, seen: map[string]struct{}{}}
		lanes[i] = l
		g.Go(func() error { return l.run(gctx, pool) })
	}
	strictErr, readErr := read(gctx, rd, lanes, &opts, t)
	for _, l := range lanes {
		close(l.rows)
	}
	err = g.Wait()
	sum := t.summary()
	sum.Elapsed = time.Since(start)
	switch {
	case err != nil:
		return sum, err
	case readErr != nil:
		return sum, readErr
	}
	return sum, strictErr
}

// read checks the file's rows and hands each good one to its customer's
// lane, reporting the bad ones, until the end of the file, the first bad
// row with --strict (strictErr), or an error reading the file or in a lane
// (which cancels ctx).
func read(ctx context.Context, rd *Reader, lanes []*lane, opts *RunOptions, t *tally) (strictErr, err error) {
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		var re *RowError
		if errors.As(err, &re) {
			t.rows.Add(1)
			t.bad.Add(1)
			if opts.OnBadRow != nil {
				opts.OnBadRow(re)
			}
			if opts.Strict {
				return fmt.Errorf("%w (--strict): %w", ErrStrict, re), nil
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		t.rows.Add(1)
		t.good.Add(1)
		t.offset.Store(rd.InputOffset())
		var customer string
		switch v := row.(type) {
		case *Customer:
			customer = v.ID
		case *Order:
			customer = v.CustomerID
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(customer))
		select {
		case lanes[h.Sum32()%uint32(len(lanes))].rows <- row:
		case <-ctx.Done():
			return nil, nil // a lane failed: Run returns its error
		}
	}
}

// tally adds up what the lanes did and reports progress one call at a time.
type tally struct {
	rows, good, bad, created, updated, offset atomic.Int64
	mu                                        sync.Mutex
	onProgress                                func(int64, Summary)
}

func (t *tally) summary() Summary {
	return Summary{Rows: t.rows.Load(), Good: t.good.Load(), Bad: t.bad.Load(), Created: t.created.Load(), Updated: t.updated.Load()}
}

func (t *tally) progress() {
	if t.onProgress == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.onProgress(t.offset.Load(), t.summary())
}

// lane writes the rows of its share of the customers on one connection, in
// batches whose keys (customer id; customer and order id) are distinct, as
// the set-based upserts need: a row whose key is already in the batch
// starts the next one, so that it is applied after the row before it, as
// the file orders them.
type lane struct {
	rows     chan any // closed at the end of the file
	opts     *RunOptions
	tally    *tally
	pending  any // the next row, not yet in a batch
	eof      bool
	n        int // rows in the current batch
	seen     map[string]struct{}
	lastLine int
}

func (l *lane) run(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer conn.Release()
	for {
		l.n = 0
		clear(l.seen)
		if l.pending == nil && !l.eof {
			l.pending, l.eof = l.receive()
		}
		if l.pending == nil {
			return nil
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if l.opts.Kind == KindCustomers {
				c, u, err := store.ImportCustomers(ctx, tx, l.nextCustomer, l.opts.InitialStage, l.opts.Version, l.opts.Now)
				l.tally.created.Add(c)
				l.tally.updated.Add(u)
				return err
			}
			n, err := store.ImportOrders(ctx, tx, l.nextOrder, l.opts.InitialStage, l.opts.Version, l.opts.Now)
			l.tally.created.Add(n)
			return err
		})
		if err != nil {
			return fmt.Errorf("import batch ending at line %d: %w", l.lastLine, err)
		}
		l.tally.progress()
	}
}

// receive waits for the lane's next row: nil and true at the end of the file.
func (l *lane) receive() (any, bool) {
	row, ok := <-l.rows
	return row, !ok
}

// next returns the batch's next row, or nil at the end of the batch.
func (l *lane) next() any {
	if l.n >= l.opts.BatchSize {
		return nil
	}
	row := l.pending
	l.pending = nil
	if row == nil && !l.eof {
		row, l.eof = l.receive()
	}
	if row == nil {
		return nil
	}
	var key string
	switch v := row.(type) {
	case *Customer:
		key, l.lastLine = v.ID, v.Line
	case *Order:
		key, l.lastLine = v.CustomerID+"\x00"+v.OrderID, v.Line
	}
	if _, dup := l.seen[key]; dup {
		l.pending = row
		return nil
	}
	l.seen[key] = struct{}{}
	l.n++
	return row
}

func (l *lane) nextCustomer() (*store.ImportCustomer, error) {
	row := l.next()
	if row == nil {
		return nil, nil
	}
	c := importCustomer(row.(*Customer))
	return &c, nil
}

func (l *lane) nextOrder() (*store.ImportOrder, error) {
	row := l.next()
	if row == nil {
		return nil, nil
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
