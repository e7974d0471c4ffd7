package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/ciclohq/ciclo/ingest"
)

// eventFields lists the accepted fields, for unknown-field errors.
const eventFields = "customer_id, type, idempotency_key, occurred_at, email, name, timezone, properties, attributes"

// EventRequest is one event as the API accepts it: the ingest event.
type EventRequest = ingest.Event

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

	results, err := s.ingest.Ingest(r.Context(), reqs, ingest.Options{Batch: batch})
	if err != nil {
		s.writeIngestError(w, r, err, len(reqs))
		return
	}
	resp := EventsResponse{Events: make([]EventResult, len(results))}
	for i, res := range results {
		resp.Events[i] = EventResult{ID: res.ID, Duplicate: res.Duplicate}
	}
	s.countIngested(results)
	writeJSON(w, http.StatusAccepted, resp)
}

// writeIngestError answers a refused ingest: 400 or 422 for a bad field,
// 422 for an unknown coupon, 409 for a coupon redeemed before, and 503
// (logged with the detail) when the database failed.
func (s *Server) writeIngestError(w http.ResponseWriter, r *http.Request, err error, n int) {
	var (
		uc *ingest.UnknownCouponError
		cr *ingest.CouponRedeemedError
	)
	switch {
	case errors.As(err, new(*ingest.FieldError)):
		writeFieldError(w, err)
	case errors.As(err, &uc):
		writeError(w, http.StatusUnprocessableEntity, uc.Field, uc.Error())
	case errors.As(err, &cr):
		writeError(w, http.StatusConflict, cr.Field, cr.Error())
	default:
		s.cfg.Logger.ErrorContext(r.Context(), "server: ingest events failed", slog.Int("num_events", n), slog.String("error", err.Error()))
		writeError(w, http.StatusServiceUnavailable, "", "events not stored, retry with the same idempotency keys: "+err.Error())
	}
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
		// occurred_at is the events' only time field.
		var bad *time.ParseError
		if errors.As(err, &bad) {
			return nil, false, &inputError{field: "occurred_at", msg: fmt.Sprintf("occurred_at: %q is not an RFC 3339 time with a 4-digit year, e.g. 2026-01-02T15:04:05Z", bad.Value)}
		}
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
	case errors.As(err, &typ) && strings.HasPrefix(typ.Value, "number") && typ.Type.Kind() == reflect.Float64:
		return &inputError{field: typ.Field, msg: fmt.Sprintf("field %q: %s is out of range: numbers must fit a 64-bit float (at most about 1.8e308)", typ.Field, typ.Value)}
	case errors.As(err, &typ) && strings.HasPrefix(typ.Value, "number") && typ.Type.Kind() >= reflect.Int && typ.Type.Kind() <= reflect.Int64:
		return &inputError{field: typ.Field, msg: fmt.Sprintf("field %q must be a whole number from %d to %d, got JSON %s", typ.Field, math.MinInt64, math.MaxInt64, typ.Value)}
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
