package csvimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciclohq/ciclo/money"
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
// re-run of the same file changes nothing. Imported orders fire no event
// rule and send nothing; scheduled rules see the facts they set.
func Run(ctx context.Context, pool *pgxpool.Pool, r io.Reader, opts RunOptions) (Summary, error) {
	start := time.Now()
	if opts.BatchSize <= 0 {
		opts.BatchSize = BatchSizeDefault
	}
	rd, err := NewReader(opts.Kind, r, Options{Stages: opts.Stages, Now: opts.Now})
	if err != nil {
		return Summary{}, err
	}
	var (
		sum       Summary
		customers []store.ImportCustomer
		orders    []store.ImportOrder
	)
	flush := func() error {
		if len(customers) == 0 && len(orders) == 0 {
			return nil
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if opts.Kind == KindCustomers {
				c, u, err := store.ImportCustomers(ctx, tx, customers, opts.InitialStage, opts.Version, opts.Now)
				sum.Created, sum.Updated = sum.Created+c, sum.Updated+u
				return err
			}
			n, err := store.ImportOrders(ctx, tx, orders, opts.InitialStage, opts.Version, opts.Now)
			sum.Created += n
			return err
		})
		if err != nil {
			return fmt.Errorf("import batch ending at line %d: %w", rd.Line(), err)
		}
		customers, orders = customers[:0], orders[:0]
		if opts.OnProgress != nil {
			opts.OnProgress(rd.InputOffset(), sum)
		}
		return nil
	}
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *RowError
		if errors.As(err, &re) {
			sum.Rows++
			sum.Bad++
			if opts.OnBadRow != nil {
				opts.OnBadRow(re)
			}
			if opts.Strict {
				if ferr := flush(); ferr != nil {
					return sum, ferr
				}
				return sum, fmt.Errorf("%w (--strict): %w", ErrStrict, re)
			}
			continue
		}
		if err != nil {
			return sum, err
		}
		sum.Rows++
		sum.Good++
		switch v := row.(type) {
		case *Customer:
			customers = append(customers, importCustomer(v))
		case *Order:
			orders = append(orders, importOrder(v))
		}
		if len(customers)+len(orders) >= opts.BatchSize {
			if err := flush(); err != nil {
				return sum, err
			}
		}
	}
	if err := flush(); err != nil {
		return sum, err
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

func importCustomer(c *Customer) store.ImportCustomer {
	attrs := c.Attributes
	if c.AcceptsMarketing != nil {
		if attrs == nil {
			attrs = map[string]any{}
		}
		attrs["accepts_email_marketing"] = *c.AcceptsMarketing
	}
	return store.ImportCustomer{Line: c.Line, ID: c.ID, Email: c.Email, Name: c.Name, Timezone: c.Timezone,
		CreatedAt: c.CreatedAt, Stage: c.Stage, Attributes: attrs}
}

func importOrder(o *Order) store.ImportOrder {
	props := map[string]any{
		"source": "import", "order_id": o.OrderID, "currency": o.Currency,
		"total": money.Major(o.TotalMinor, o.Currency), "total_minor": o.TotalMinor,
	}
	if o.Status != "" {
		props["status"] = o.Status
	}
	return store.ImportOrder{
		Line: o.Line, CustomerID: o.CustomerID, OrderID: o.OrderID, Type: o.EventType(), Properties: props,
		// Facts keep total spent in hundredths of the currency unit.
		TotalCents: int64(money.Major(o.TotalMinor, o.Currency)*100 + 0.5),
		Counted:    o.Counted(), OrderedAt: o.OrderedAt,
	}
}
