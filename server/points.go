package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/store"
)

const (
	// maxPointsBody caps a points request body.
	maxPointsBody = 4 << 10
	// pointsEntriesShown is how many recent ledger entries GET shows.
	pointsEntriesShown = 50
	// maxPointsKey caps an idempotency key, as for events.
	maxPointsKey = 255
	// maxPoints caps the points of one request.
	maxPoints = 1_000_000_000_000
)

// PointsResponse is a customer's points: GET /v1/customers/{id}/points.
type PointsResponse struct {
	CustomerID string `json:"customer_id"`
	// Balance is the sum of the ledger (below zero while a debt is open).
	Balance int64 `json:"balance"`
	// Pending is what is granted but not spendable yet.
	Pending int64 `json:"pending"`
	// NextExpiry is when the earliest-expiring available points expire.
	NextExpiry *time.Time            `json:"next_expiry"`
	Tier       string                `json:"tier"`
	Lots       []PointsLotResponse   `json:"lots"`
	Entries    []PointsEntryResponse `json:"entries"`
}

// PointsLotResponse is a lot with points left.
type PointsLotResponse struct {
	ID          int64      `json:"id"`
	Amount      int64      `json:"amount"`
	Remaining   int64      `json:"remaining"`
	Reason      string     `json:"reason"`
	Rule        string     `json:"rule,omitempty"`
	OrderID     string     `json:"order_id,omitempty"`
	GrantedAt   time.Time  `json:"granted_at"`
	AvailableAt time.Time  `json:"available_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// PointsEntryResponse is a ledger entry.
type PointsEntryResponse struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"`
	Amount    int64     `json:"amount"`
	LotID     int64     `json:"lot_id,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	OrderID   string    `json:"order_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// RedeemRequest is the body of POST /v1/customers/{id}/points/redeem.
type RedeemRequest struct {
	Points         int64  `json:"points"`
	OrderID        string `json:"order_id"`
	IdempotencyKey string `json:"idempotency_key"`
	// AsCoupon turns the points into an amount coupon worth points ×
	// defaults.points_value.
	AsCoupon bool `json:"as_coupon"`
}

// AdjustRequest is the body of POST /v1/customers/{id}/points/adjust.
type AdjustRequest struct {
	Points         int64  `json:"points"`
	Reason         string `json:"reason"`
	IdempotencyKey string `json:"idempotency_key"`
}

// PointsOpResponse answers a redemption or an adjustment; a retry with the
// same key answers the same.
type PointsOpResponse struct {
	OperationID int64                 `json:"operation_id"`
	Kind        string                `json:"kind"`
	Points      int64                 `json:"points"`
	OrderID     string                `json:"order_id,omitempty"`
	Reason      string                `json:"reason,omitempty"`
	Debt        int64                 `json:"debt,omitempty"`
	CreatedAt   time.Time             `json:"created_at"`
	Coupon      *PointsCouponResponse `json:"coupon,omitempty"`
}

// PointsCouponResponse is a coupon points were turned into.
type PointsCouponResponse struct {
	Code  string  `json:"code"`
	Kind  string  `json:"kind"`
	Value float64 `json:"value"`
}

func (s *Server) getPoints(w http.ResponseWriter, r *http.Request) {
	id, ok := customerID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	st := store.New(s.cfg.Pool)
	if _, err := st.GetCustomer(ctx, id); err != nil {
		s.customerError(w, r, id, err)
		return
	}
	now := s.cfg.Now()
	sum, err := st.PointsSummary(ctx, id, now)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	lots, err := st.PointsLots(ctx, id)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	entries, err := st.PointsEntries(ctx, id, pointsEntriesShown)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	out := PointsResponse{CustomerID: id, Balance: sum.Balance, Pending: sum.Pending, NextExpiry: timePtr(sum.NextExpiry),
		Tier: sum.Tier, Lots: make([]PointsLotResponse, len(lots)), Entries: make([]PointsEntryResponse, len(entries))}
	for i, l := range lots {
		out.Lots[i] = PointsLotResponse{ID: l.ID, Amount: l.Amount, Remaining: l.Remaining, Reason: l.Reason, Rule: l.Rule,
			OrderID: l.OrderID, GrantedAt: l.GrantedAt, AvailableAt: l.AvailableAt, ExpiresAt: timePtr(l.ExpiresAt)}
	}
	for i, e := range entries {
		out.Entries[i] = PointsEntryResponse{ID: e.ID, Kind: e.Kind, Amount: e.Amount, LotID: e.LotID, Reason: e.Reason,
			OrderID: e.OrderID, CreatedAt: e.CreatedAt}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) redeemPoints(w http.ResponseWriter, r *http.Request) {
	id, ok := customerID(w, r)
	if !ok {
		return
	}
	var req RedeemRequest
	if !decodePointsBody(w, r, &req, "points, order_id, idempotency_key, as_coupon") {
		return
	}
	if !checkPointsRequest(w, req.Points, false, req.IdempotencyKey) {
		return
	}
	if len(req.OrderID) > maxPointsKey {
		writeError(w, http.StatusBadRequest, "order_id", fmt.Sprintf("order_id is longer than %d bytes", maxPointsKey))
		return
	}
	rs := s.cfg.Rules.Load()
	value := rs.Defaults.PointsValue
	if req.AsCoupon && value <= 0 {
		writeError(w, http.StatusUnprocessableEntity, "as_coupon",
			"points cannot be turned into coupons: set defaults.points_value (currency units per point) in the rules file")
		return
	}
	now := s.cfg.Now()
	var out PointsOpResponse
	err := s.pointsTx(r.Context(), func(ctx context.Context, tx pgx.Tx, st *store.Store) ([]store.EventRef, error) {
		op, err := st.RedeemPoints(ctx, id, req.Points, req.OrderID, req.IdempotencyKey, now)
		if err != nil {
			return nil, err
		}
		out = opResponse(op)
		rule := "points:op:" + strconv.FormatInt(op.ID, 10)
		if op.Duplicate {
			c, err := st.PointsCoupon(ctx, id, rule)
			if err == nil && c != nil {
				out.Coupon = &PointsCouponResponse{Code: c.Code, Kind: c.Kind, Value: c.Value}
			}
			return nil, err
		}
		if req.AsCoupon {
			c := &store.Coupon{CustomerID: id, Rule: rule, Kind: "amount", Value: math.Round(float64(req.Points)*value*100) / 100, CreatedAt: now}
			for try := 0; ; try++ {
				c.Code = store.NewCouponCode()
				err := st.InsertCoupon(ctx, c)
				if err == nil {
					break
				}
				if !errors.Is(err, store.ErrCouponCodeTaken) || try == 4 {
					return nil, err
				}
			}
			out.Coupon = &PointsCouponResponse{Code: c.Code, Kind: c.Kind, Value: c.Value}
		}
		return st.InsertPointsEvents(ctx, store.SpentEvents(id, op), now)
	})
	if err != nil {
		s.pointsError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) adjustPoints(w http.ResponseWriter, r *http.Request) {
	id, ok := customerID(w, r)
	if !ok {
		return
	}
	var req AdjustRequest
	if !decodePointsBody(w, r, &req, "points, reason, idempotency_key") {
		return
	}
	if !checkPointsRequest(w, req.Points, true, req.IdempotencyKey) {
		return
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" {
		writeError(w, http.StatusBadRequest, "reason", "reason is required: say why the points are corrected (it is kept in the ledger)")
		return
	}
	if len(req.Reason) > 500 {
		writeError(w, http.StatusBadRequest, "reason", "reason is longer than 500 bytes")
		return
	}
	var out PointsOpResponse
	err := s.pointsTx(r.Context(), func(ctx context.Context, _ pgx.Tx, st *store.Store) ([]store.EventRef, error) {
		now := s.cfg.Now()
		op, err := st.AdjustPoints(ctx, id, req.Points, req.Reason, req.IdempotencyKey, now)
		out = opResponse(op)
		if err != nil {
			return nil, err
		}
		return st.InsertPointsEvents(ctx, store.OpEvents(id, op), now)
	})
	if err != nil {
		s.pointsError(w, r, id, err)
		return
	}
	s.cfg.Logger.InfoContext(r.Context(), "points: adjusted", slog.String("customer_id", id), slog.Int64("points", req.Points),
		slog.String("reason", req.Reason), slog.Int64("operation_id", out.OperationID))
	writeJSON(w, http.StatusOK, out)
}

// pointsTx runs fn in a transaction and enqueues the evaluation of the
// events it recorded there.
func (s *Server) pointsTx(ctx context.Context, fn func(context.Context, pgx.Tx, *store.Store) ([]store.EventRef, error)) error {
	return pgx.BeginFunc(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		evs, err := fn(ctx, tx, store.New(tx))
		if err != nil {
			return err
		}
		return ingest.EnqueueEvaluations(ctx, tx, s.cfg.River, evs)
	})
}

func (s *Server) pointsError(w http.ResponseWriter, r *http.Request, id string, err error) {
	var insufficient *store.InsufficientPointsError
	switch {
	case errors.As(err, &insufficient):
		writeError(w, http.StatusConflict, "points", fmt.Sprintf("customer %q has %d points to spend, %d asked; nothing was spent",
			id, insufficient.Spendable, insufficient.Asked))
	case errors.Is(err, store.ErrPointsKeyReused):
		writeError(w, http.StatusConflict, "idempotency_key", err.Error()+"; use a new key for a new operation")
	default:
		s.customerError(w, r, id, err)
	}
}

func (s *Server) customerError(w http.ResponseWriter, r *http.Request, id string, err error) {
	if errors.Is(err, store.ErrCustomerNotFound) {
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("no customer %q: customers are created by their first event (POST /v1/events)", id))
		return
	}
	s.serverError(w, r, err)
}

// decodePointsBody decodes a small JSON object into v, refusing unknown
// fields (accepted lists them) and trailing data.
func decodePointsBody(w http.ResponseWriter, r *http.Request, v any, accepted string) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPointsBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("body is larger than %d bytes", maxPointsBody))
		return false
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "", "read request body: "+err.Error())
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			name = strings.Trim(name, `"`)
			writeError(w, http.StatusBadRequest, name, fmt.Sprintf("unknown field %q; accepted fields: %s", name, accepted))
			return false
		}
		ie, _ := asInputError(jsonError(err, body))
		writeError(w, http.StatusBadRequest, ie.field, ie.msg)
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "", "unexpected data after the JSON object")
		return false
	}
	// As for events: judge the strings as sent, before encoding/json's
	// U+FFFD rewrite and the database's refusal of NUL.
	if err := ingest.CheckJSONText(body); err != nil {
		writeFieldError(w, err)
		return false
	}
	return true
}

// checkPointsRequest checks the points (positive, or non-zero when signed)
// and the idempotency key of a request.
func checkPointsRequest(w http.ResponseWriter, points int64, signed bool, key string) bool {
	switch {
	case !signed && points <= 0:
		writeError(w, http.StatusBadRequest, "points", fmt.Sprintf("points must be a positive whole number, got %d", points))
	case signed && points == 0:
		writeError(w, http.StatusBadRequest, "points", "points must not be 0: positive adds points, negative takes them away")
	case points > maxPoints || points < -maxPoints:
		writeError(w, http.StatusBadRequest, "points", fmt.Sprintf("points %d is over the limit of %d", points, int64(maxPoints)))
	case key == "":
		writeError(w, http.StatusBadRequest, "idempotency_key", "idempotency_key is required: a retry with the same key answers the same and spends once")
	case len(key) > maxPointsKey:
		writeError(w, http.StatusBadRequest, "idempotency_key", fmt.Sprintf("idempotency_key is longer than %d bytes", maxPointsKey))
	default:
		return true
	}
	return false
}

func opResponse(op store.PointsOp) PointsOpResponse {
	return PointsOpResponse{OperationID: op.ID, Kind: op.Kind, Points: op.Points, OrderID: op.OrderID, Reason: op.Reason,
		Debt: op.Debt, CreatedAt: op.CreatedAt}
}
