// Package csvimport backfills a store's customer or order history from CSV
// (`ciclo import`). Reader streams a file and checks every row with the
// ingest package's field checks (the events API's rules): good rows come out
// typed, bad rows as errors naming their line and what is wrong, and the
// import goes on. Run streams the good rows in batches into the store's
// staging-table COPY and set-based upserts.
package csvimport

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/money"
	"github.com/ciclohq/ciclo/store"
)

// Kinds of file.
const (
	KindCustomers = "customers"
	KindOrders    = "orders"
)

// Order statuses that do not count as a purchase in the facts.
var (
	cancelledStatuses = []string{"cancelled", "canceled", "voided", "failed"}
	refundedStatuses  = []string{"refunded"}
)

// Columns each kind requires and knows; other customer columns become
// attributes.
var (
	customerRequired = []string{"id"}
	customerKnown    = []string{"id", "email", "name", "timezone", "created_at", "stage", "accepts_marketing"}
	orderRequired    = []string{"customer_id", "order_id", "total", "currency", "ordered_at"}
	orderKnown       = []string{"customer_id", "order_id", "total", "currency", "ordered_at", "status"}
)

// ErrHeader is returned by NewReader when the header line is unusable.
var ErrHeader = errors.New("csv header")

// Customer is one good row of a customers file.
type Customer struct {
	Line      int
	ID        string
	Email     string
	Name      string
	Timezone  string
	CreatedAt time.Time // zero: not given
	Stage     string
	// AcceptsMarketing is nil when the file does not say.
	AcceptsMarketing *bool
	Attributes       map[string]any
}

// Order is one good row of an orders file.
type Order struct {
	Line       int
	CustomerID string
	OrderID    string
	// TotalMinor is the total in minor units of Currency.
	TotalMinor int64
	Currency   string
	OrderedAt  time.Time
	Status     string
}

// Counted reports whether the order counts as a purchase (orders_count,
// total spent): not cancelled, voided, failed or refunded.
func (o *Order) Counted() bool {
	return !slices.Contains(cancelledStatuses, o.Status) && !slices.Contains(refundedStatuses, o.Status)
}

// EventType is the type of the event the order is stored as.
func (o *Order) EventType() string {
	switch {
	case slices.Contains(cancelledStatuses, o.Status):
		return store.EventOrderCancelled
	case slices.Contains(refundedStatuses, o.Status):
		return store.EventOrderRefunded
	}
	return store.EventOrderPlaced
}

// Properties are the properties of the event the order is stored as, the
// same with or without --trigger.
func (o *Order) Properties() map[string]any {
	props := map[string]any{
		"source": "import", "order_id": o.OrderID, "currency": o.Currency,
		"total": money.Major(o.TotalMinor, o.Currency), "total_minor": o.TotalMinor,
	}
	if o.Status != "" {
		props["status"] = o.Status
	}
	return props
}

// TotalCents is the total in hundredths of the currency unit, as the facts
// keep total spent, computed in integers (half up for currencies with
// three decimals).
func (o *Order) TotalCents() int64 {
	exp, err := money.Exponent(o.Currency)
	if err != nil { // the reader accepts only known currencies
		exp = 2
	}
	cents := o.TotalMinor
	for ; exp < 2; exp++ {
		cents *= 10
	}
	for ; exp > 2; exp-- {
		cents = (cents + 5) / 10
	}
	return cents
}

// RowError is a bad row: its line (1-based, the header is line 1) and why.
type RowError struct {
	Line   int
	Column string // "" when the row as a whole is bad
	Reason string
}

func (e *RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Column, e.Reason)
}

// Options configures a Reader.
type Options struct {
	// Stages are the rule set's stages, which a customer's stage column
	// must name; nil accepts any.
	Stages []string
	// Now bounds times: none may be later than Now plus a day.
	Now time.Time
}

// Reader streams the rows of one file.
type Reader struct {
	kind  string
	opts  Options
	csv   *csv.Reader
	cols  map[string]int
	extra []string // attribute columns of a customers file, in order
	names []string
	zones map[string]error // time zones checked so far (checkZone)
}

// NewReader reads the header line of a kind's file and returns a Reader
// for its rows. A header that lacks a required column, repeats one or is
// not valid CSV is an error wrapping ErrHeader.
func NewReader(kind string, r io.Reader, opts Options) (*Reader, error) {
	if kind != KindCustomers && kind != KindOrders {
		return nil, fmt.Errorf("unknown import kind %q: use customers or orders", kind)
	}
	c := csv.NewReader(r)
	c.FieldsPerRecord = -1
	c.ReuseRecord = true
	header, err := c.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty; its first line must name the columns", ErrHeader)
		}
		return nil, fmt.Errorf("%w: %v", ErrHeader, err)
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	rd := &Reader{kind: kind, opts: opts, csv: c, cols: map[string]int{}, zones: map[string]error{}}
	required, known := customerRequired, customerKnown
	if kind == KindOrders {
		required, known = orderRequired, orderKnown
	}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if name == "" {
			return nil, fmt.Errorf("%w: column %d has no name", ErrHeader, i+1)
		}
		if _, dup := rd.cols[name]; dup {
			return nil, fmt.Errorf("%w: column %q appears twice", ErrHeader, name)
		}
		rd.cols[name] = i
		rd.names = append(rd.names, name)
		if !slices.Contains(known, name) {
			if kind == KindOrders {
				return nil, fmt.Errorf("%w: unknown column %q in an orders file; columns are: %s", ErrHeader, name, strings.Join(known, ", "))
			}
			rd.extra = append(rd.extra, name)
		}
	}
	for _, name := range required {
		if _, ok := rd.cols[name]; !ok {
			return nil, fmt.Errorf("%w: missing column %q; a %s file needs %s", ErrHeader, name, kind, strings.Join(required, ", "))
		}
	}
	return rd, nil
}

// Line returns the line of the last row read.
func (r *Reader) Line() int {
	line, _ := r.csv.FieldPos(0)
	return line
}

// InputOffset returns how many bytes of the input have been read, for a
// progress bar.
func (r *Reader) InputOffset() int64 { return r.csv.InputOffset() }

// Next returns the next row: a *Customer or *Order, or a *RowError for a
// bad row (the caller reports it and calls Next again), or io.EOF at the end.
// Any other error (the file cannot be read) ends the import.
func (r *Reader) Next() (any, error) {
	rec, err := r.csv.Read()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	var perr *csv.ParseError
	if errors.As(err, &perr) {
		return nil, &RowError{Line: perr.StartLine, Reason: "malformed CSV: " + perr.Err.Error()}
	}
	if err != nil {
		return nil, fmt.Errorf("read csv: %w", err)
	}
	line := r.Line()
	if len(rec) != len(r.names) {
		return nil, &RowError{Line: line, Reason: fmt.Sprintf("has %d fields, the header has %d", len(rec), len(r.names))}
	}
	for i, v := range rec {
		if err := ingest.CheckString(r.names[i], v); err != nil {
			return nil, rowError(line, err)
		}
	}
	if r.kind == KindCustomers {
		return r.customer(rec, line)
	}
	return r.order(rec, line)
}

func (r *Reader) get(rec []string, name string) string {
	if i, ok := r.cols[name]; ok {
		return strings.TrimSpace(rec[i])
	}
	return ""
}

// rowError turns a field check's error into a bad row at line.
func rowError(line int, err error) error {
	var (
		fe *ingest.FieldError
		re *RowError
	)
	switch {
	case errors.As(err, &fe):
		return &RowError{Line: line, Column: fe.Field, Reason: fe.Message}
	case errors.As(err, &re):
		out := *re
		out.Line = line
		return &out
	}
	return &RowError{Line: line, Reason: err.Error()}
}

// checkID is the rule for an id column: present, and what the events API
// accepts as a customer id.
func checkID(col, id string) error {
	if id == "" {
		return &RowError{Column: col, Reason: "required"}
	}
	return ingest.CheckCustomerID(col, id)
}

func (r *Reader) customer(rec []string, line int) (any, error) {
	c := &Customer{Line: line, ID: r.get(rec, "id"), Email: r.get(rec, "email"), Name: r.get(rec, "name"),
		Timezone: r.get(rec, "timezone"), Stage: r.get(rec, "stage")}
	if err := r.checkCustomer(c, rec); err != nil {
		return nil, rowError(line, err)
	}
	return c, nil
}

// checkCustomer checks a customers row with the events API's rules for the
// same fields and fills in its typed columns.
func (r *Reader) checkCustomer(c *Customer, rec []string) error {
	if err := checkID("id", c.ID); err != nil {
		return err
	}
	if c.Email != "" {
		if err := ingest.CheckEmail("email", c.Email); err != nil {
			return err
		}
	}
	if err := ingest.CheckName("name", c.Name); err != nil {
		return err
	}
	if c.Timezone != "" {
		if err := r.checkZone(c.Timezone); err != nil {
			return err
		}
	}
	if s := r.get(rec, "created_at"); s != "" {
		t, err := r.parseTime("created_at", s)
		if err != nil {
			return err
		}
		c.CreatedAt = t
	}
	if c.Stage != "" && r.opts.Stages != nil && !slices.Contains(r.opts.Stages, c.Stage) {
		return &RowError{Column: "stage", Reason: fmt.Sprintf("%q is not a stage of the rules file; stages are: %s", c.Stage, strings.Join(r.opts.Stages, ", "))}
	}
	if s := r.get(rec, "accepts_marketing"); s != "" {
		b, ok := parseBool(s)
		if !ok {
			return &RowError{Column: "accepts_marketing", Reason: fmt.Sprintf("%q is not a yes/no value (true, false, yes, no, 1, 0)", s)}
		}
		c.AcceptsMarketing = &b
	}
	if len(r.extra) > 0 {
		c.Attributes = make(map[string]any, len(r.extra))
		for _, name := range r.extra {
			if v := r.get(rec, name); v != "" {
				c.Attributes[name] = v
			}
		}
	}
	return nil
}

func (r *Reader) order(rec []string, line int) (any, error) {
	o := &Order{Line: line, CustomerID: r.get(rec, "customer_id"), OrderID: r.get(rec, "order_id"),
		Currency: strings.ToUpper(r.get(rec, "currency")), Status: strings.ToLower(r.get(rec, "status"))}
	if err := r.checkOrder(o, rec); err != nil {
		return nil, rowError(line, err)
	}
	return o, nil
}

// checkOrder checks an orders row and fills in its typed columns.
func (r *Reader) checkOrder(o *Order, rec []string) error {
	if err := checkID("customer_id", o.CustomerID); err != nil {
		return err
	}
	if err := checkID("order_id", o.OrderID); err != nil {
		return err
	}
	if err := ingest.CheckIdempotencyKey("order_id", OrderKey(o.OrderID)); err != nil {
		return err
	}
	total, err := money.ParseMinor(r.get(rec, "total"), o.Currency)
	if err != nil {
		col := "total"
		if _, cerr := money.Exponent(o.Currency); cerr != nil {
			col = "currency"
		}
		return &RowError{Column: col, Reason: err.Error()}
	}
	if total < 0 {
		return &RowError{Column: "total", Reason: "is negative; import refunds with status refunded"}
	}
	o.TotalMinor = total
	t, err := r.parseTime("ordered_at", r.get(rec, "ordered_at"))
	if err != nil {
		return err
	}
	o.OrderedAt = t
	return nil
}

// OrderKey is the idempotency key of an imported order's event, which makes
// a re-import of the order a no-op.
func OrderKey(orderID string) string { return "import:order:" + orderID }

// checkZone is ingest.CheckTimezone, remembering the answer for the zones a
// file uses (a handful, over many rows): LoadLocation parses tzdata on
// every call.
func (r *Reader) checkZone(name string) error {
	err, seen := r.zones[name]
	if !seen {
		err = ingest.CheckTimezone("timezone", name)
		if len(r.zones) < 1000 {
			r.zones[name] = err
		}
	}
	return err
}

// timeLayouts are the layouts a time column may use; those without an
// offset are read as UTC.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05Z07:00", "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"}

func (r *Reader) parseTime(col, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, &RowError{Column: col, Reason: "required"}
	}
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			if err := ingest.CheckOccurredAt(col, t, r.opts.Now); err != nil {
				return time.Time{}, err
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, &RowError{Column: col, Reason: fmt.Sprintf("%q is not a date (2024-03-01) or time (2024-03-01T10:00:00Z)", s)}
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "y", "t":
		return true, true
	case "0", "false", "no", "n", "f":
		return false, true
	}
	b, err := strconv.ParseBool(s)
	return b, err == nil
}
