package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/worker"
)

// Limits on event fields (contact fields are bounded by package ingest).
const (
	maxTypeLen = 100
	// maxClockSkew is how far in the future occurred_at may be.
	maxClockSkew = 24 * time.Hour
	// maxOrderTotal keeps totals well inside total_spent's integer cents.
	maxOrderTotal = 1e12
)

// minOccurredAt is the earliest occurred_at accepted.
var minOccurredAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

var eventTypeRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]*$`)

// eventFields lists the accepted fields, for unknown-field errors.
const eventFields = "customer_id, type, idempotency_key, occurred_at, email, name, timezone, properties, attributes"

// EventRequest is one event as the API accepts it.
type EventRequest struct {
	CustomerID     string         `json:"customer_id"`
	Type           string         `json:"type"`
	IdempotencyKey string         `json:"idempotency_key,omitempty"`
	OccurredAt     *time.Time     `json:"occurred_at,omitempty"`
	Email          string         `json:"email,omitempty"`
	Name           string         `json:"name,omitempty"`
	Timezone       string         `json:"timezone,omitempty"`
	Properties     map[string]any `json:"properties,omitempty"`
	Attributes     map[string]any `json:"attributes,omitempty"`
}

// EventResult is the answer for one accepted event.
type EventResult struct {
	ID        int64 `json:"id"`
	Duplicate bool  `json:"duplicate"`
}

// EventsResponse is the answer to POST /v1/events, in request order.
type EventsResponse struct {
	Events []EventResult `json:"events"`
}

// postEvents ingests one event (a JSON object) or a batch (a JSON array).
// Every event of a batch is validated before anything is written; then all
// are stored with their evaluate jobs in one transaction, and the answer
// comes after commit.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	reqs, batch, err := s.decodeEvents(w, r)
	if err != nil {
		if ie, ok := asInputError(err); ok {
			status := http.StatusBadRequest
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) || strings.Contains(ie.msg, "body is larger") {
				status = http.StatusRequestEntityTooLarge
			}
			writeError(w, status, ie.field, ie.msg)
			return
		}
		writeError(w, http.StatusBadRequest, "", err.Error())
		return
	}

	now := s.cfg.Now()
	events := make([]*store.NewEvent, len(reqs))
	for i, e := range reqs {
		ne, err := s.validate(e, now)
		if err != nil {
			if batch {
				err = ingest.AtIndex(err, i)
			}
			writeFieldError(w, err)
			return
		}
		events[i] = ne
	}

	rs := s.cfg.Rules.Load()
	initial := ""
	if len(rs.Stages) > 0 {
		initial = rs.Stages[0]
	}
	resp := EventsResponse{Events: make([]EventResult, len(events))}
	// Customers are locked in id order (each customer's events keep their
	// order) so that concurrent batches and sweeps cannot deadlock.
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(events[a].CustomerID, events[b].CustomerID) })
	err = pgx.BeginFunc(r.Context(), s.cfg.Pool, func(tx pgx.Tx) error {
		st := store.New(tx)
		// All events' statements go in one pipelined batch, in lock order.
		sorted := make([]*store.NewEvent, len(order))
		for k, i := range order {
			sorted[k] = events[i]
		}
		ingested, err := st.IngestEvents(r.Context(), sorted, initial, rs.Version)
		var conflict *store.IdempotencyConflictError
		if errors.As(err, &conflict) {
			return idempotencyConflict(conflict, order, batch)
		}
		if err != nil {
			return err
		}
		var jobs []river.InsertManyParams
		for k, i := range order {
			e, res := events[i], ingested[k]
			resp.Events[i] = EventResult{ID: res.EventID, Duplicate: res.Duplicate}
			if e.Type == EventCouponRedeemed && !res.Duplicate {
				if err := redeemCoupon(r.Context(), st, e, i, batch); err != nil {
					return err
				}
			}
			if !res.Duplicate {
				jobs = append(jobs, river.InsertManyParams{Args: worker.EvaluateArgs{
					CustomerID: e.CustomerID, EventID: res.EventID,
				}})
			}
		}
		if len(jobs) == 0 {
			return nil
		}
		if _, err := s.cfg.River.InsertManyTx(r.Context(), tx, jobs); err != nil {
			return fmt.Errorf("enqueue evaluation: %w", err)
		}
		return nil
	})
	if err != nil && errors.As(err, new(*ingest.FieldError)) {
		writeFieldError(w, err)
		return
	}
	if err != nil && writeCouponError(w, err) {
		return
	}
	if err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "server: ingest events failed", slog.Int("num_events", len(events)), slog.String("error", err.Error()))
		writeError(w, http.StatusServiceUnavailable, "", "events not stored, retry with the same idempotency keys: "+err.Error())
		return
	}
	s.countIngested(events, resp)
	writeJSON(w, http.StatusAccepted, resp)
}

// decodeEvents reads a single event or an array of events, strictly.
func (s *Server) decodeEvents(w http.ResponseWriter, r *http.Request) (reqs []*EventRequest, batch bool, err error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, false, &inputError{msg: fmt.Sprintf("unsupported Content-Type %q: send application/json", ct)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, false, &inputError{msg: fmt.Sprintf("request body is larger than %d bytes: split the batch", s.cfg.MaxBodyBytes)}
		}
		return nil, false, &inputError{msg: "read request body: " + err.Error()}
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, false, &inputError{msg: "empty body: send one event as a JSON object or a batch as a JSON array"}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	batch = trimmed[0] == '['
	if batch {
		err = dec.Decode(&reqs)
	} else {
		var one EventRequest
		err = dec.Decode(&one)
		reqs = []*EventRequest{&one}
	}
	if err != nil {
		return nil, false, jsonError(err, trimmed)
	}
	if dec.More() {
		return nil, false, &inputError{msg: "malformed JSON: unexpected data after the first value; send a JSON array for a batch"}
	}
	// encoding/json replaced invalid UTF-8 and lone surrogates with U+FFFD
	// and kept NULs the database refuses: judge the bytes as sent.
	if err := ingest.CheckJSONText(body); err != nil {
		var fe *ingest.FieldError
		errors.As(err, &fe)
		return nil, false, &inputError{field: fe.Field, msg: fe.Error()}
	}
	if len(reqs) == 0 {
		return nil, false, &inputError{msg: "empty batch: send at least one event"}
	}
	if len(reqs) > s.cfg.MaxBatch {
		return nil, false, &inputError{msg: fmt.Sprintf("batch of %d events is over the limit of %d: split it", len(reqs), s.cfg.MaxBatch)}
	}
	for i, e := range reqs {
		if e == nil {
			return nil, false, &inputError{field: fmt.Sprintf("[%d]", i), msg: fmt.Sprintf("[%d]: event is null", i)}
		}
	}
	return reqs, batch, nil
}

// jsonError turns a decoding error into a message that says what and where.
func jsonError(err error, body []byte) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		line, col := position(body, syntax.Offset)
		return &inputError{msg: fmt.Sprintf("malformed JSON at line %d, column %d: %s", line, col, syntax.Error())}
	case errors.As(err, &typ):
		return &inputError{field: typ.Field, msg: fmt.Sprintf("field %q must be %s, got JSON %s", typ.Field, jsonKind(typ.Type.String()), typ.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &inputError{msg: "malformed JSON: body ends in the middle of a value"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &inputError{field: name, msg: fmt.Sprintf("unknown field %q; accepted fields: %s (put custom data in properties or attributes)", name, eventFields)}
	}
	return &inputError{msg: "malformed JSON: " + err.Error()}
}

func jsonKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	case strings.Contains(goType, "Time"):
		return "an RFC 3339 time string"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return goType
}

func position(body []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < offset-1 && i < int64(len(body)); i++ {
		if body[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// validate checks one event and converts it for the store. Its errors are
// *ingest.FieldError: ingest.ErrMalformed for text that cannot be taken as
// sent (400), ingest.ErrInvalid for the rest (422).
func (s *Server) validate(e *EventRequest, now time.Time) (*store.NewEvent, error) {
	bad := func(field, format string, args ...any) error {
		return &ingest.FieldError{Field: field, Message: fmt.Sprintf(format, args...), Kind: ingest.ErrInvalid}
	}
	if strings.TrimSpace(e.CustomerID) == "" {
		return nil, bad("customer_id", "required: the store's id for the customer")
	}
	if err := ingest.CheckCustomerID("customer_id", e.CustomerID); err != nil {
		return nil, err
	}
	switch {
	case e.Type == "":
		return nil, bad("type", `required: the event type, e.g. "order_placed"`)
	case len(e.Type) > maxTypeLen || !eventTypeRE.MatchString(e.Type):
		return nil, bad("type", "%q is not a valid event type: use lowercase letters, digits, '_', '.' or '-', starting with a letter", e.Type)
	}
	if err := ingest.CheckIdempotencyKey("idempotency_key", e.IdempotencyKey); err != nil {
		return nil, err
	}
	if e.Email != "" {
		if err := ingest.CheckEmail("email", e.Email); err != nil {
			return nil, err
		}
	}
	if err := ingest.CheckName("name", e.Name); err != nil {
		return nil, err
	}
	if e.Timezone != "" {
		if err := ingest.CheckTimezone("timezone", e.Timezone); err != nil {
			return nil, err
		}
	}
	if err := validateCouponRedeemed(e); err != nil {
		return nil, err
	}
	ne := &store.NewEvent{
		CustomerID: e.CustomerID, Type: e.Type, IdempotencyKey: e.IdempotencyKey,
		OccurredAt: now, ReceivedAt: now, Properties: e.Properties,
		Email: e.Email, Name: e.Name, Timezone: e.Timezone, Attributes: e.Attributes,
	}
	if e.IdempotencyKey != "" {
		ne.PayloadHash = e.payloadHash()
	}
	if e.OccurredAt != nil {
		// Facts keep the latest and earliest times they saw, so one absurd
		// time would stick to the customer for good.
		switch at := *e.OccurredAt; {
		case at.After(now.Add(maxClockSkew)):
			return nil, bad("occurred_at", "%s is in the future (more than %s ahead of the server's clock)", at.Format(time.RFC3339), maxClockSkew)
		case at.Before(minOccurredAt):
			return nil, bad("occurred_at", "%s is before %s: send the time the event happened", at.Format(time.RFC3339), minOccurredAt.Format("2006-01-02"))
		}
		ne.OccurredAt = *e.OccurredAt
	}
	if s.orderEvents[e.Type] {
		ne.IsOrder = true
		if v, ok := e.Properties["total"]; ok {
			total, ok := v.(float64)
			if !ok || total < 0 || total > maxOrderTotal {
				return nil, bad("properties.total", "must be a number from 0 to %.0f (the order total in currency units), got %v", maxOrderTotal, v)
			}
			ne.OrderTotal = total
		}
	}
	return ne, nil
}

// payloadHash identifies the event as sent (ingest.PayloadHash): its fields
// in a fixed order, occurred_at in UTC (absent stays absent: the server's
// clock is not part of the payload), and an empty properties or attributes
// object the same as none. A retry with the same idempotency key must have
// the same hash.
func (e *EventRequest) payloadHash() []byte {
	occurred := ""
	if e.OccurredAt != nil {
		occurred = e.OccurredAt.UTC().Format(time.RFC3339Nano)
	}
	var props, attrs any
	if len(e.Properties) > 0 {
		props = e.Properties
	}
	if len(e.Attributes) > 0 {
		attrs = e.Attributes
	}
	return ingest.PayloadHash(e.CustomerID, e.Type, e.IdempotencyKey, occurred, e.Email, e.Name, e.Timezone, props, attrs)
}

// idempotencyConflict is the answer to a reused idempotency key; order maps
// the positions of the store call to the request's.
func idempotencyConflict(c *store.IdempotencyConflictError, order []int, batch bool) error {
	i := order[c.Index]
	field := "idempotency_key"
	if batch {
		field = "[" + strconv.Itoa(i) + "]." + field
	}
	msg := fmt.Sprintf("idempotency key %q of customer %q was first used for a different event (id %d); "+
		"nothing was stored: resend that event unchanged, or use a new key for a new event", c.Key, c.CustomerID, c.EventID)
	if c.FirstIndex >= 0 {
		msg = fmt.Sprintf("idempotency key %q of customer %q is used by two different events of this batch ([%d] and [%d]); "+
			"nothing was stored: give each event its own key", c.Key, c.CustomerID, order[c.FirstIndex], i)
	}
	return &ingest.FieldError{Field: field, Kind: ingest.ErrInvalid, Message: msg}
}

// writeFieldError answers a refused field: 400 for text that cannot be taken
// as sent, 422 for the rest.
func writeFieldError(w http.ResponseWriter, err error) {
	var fe *ingest.FieldError
	if !errors.As(err, &fe) {
		writeError(w, http.StatusUnprocessableEntity, "", err.Error())
		return
	}
	status := http.StatusUnprocessableEntity
	if errors.Is(fe, ingest.ErrMalformed) {
		status = http.StatusBadRequest
	}
	writeError(w, status, fe.Field, fe.Error())
}
