package server

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/store"
)

// CustomerResponse is the answer to GET /v1/customers/{id}.
type CustomerResponse struct {
	ID             string           `json:"id"`
	Email          string           `json:"email,omitempty"`
	Name           string           `json:"name,omitempty"`
	Timezone       string           `json:"timezone,omitempty"`
	Stage          string           `json:"stage"`
	StageEnteredAt *time.Time       `json:"stage_entered_at,omitempty"`
	CreatedAt      time.Time        `json:"created_at"`
	LastSeenAt     *time.Time       `json:"last_seen_at,omitempty"`
	FirstOrderAt   *time.Time       `json:"first_order_at,omitempty"`
	LastOrderAt    *time.Time       `json:"last_order_at,omitempty"`
	OrdersCount    int              `json:"orders_count"`
	TotalSpent     float64          `json:"total_spent"`
	Attributes     map[string]any   `json:"attributes"`
	Consent        ConsentResponse  `json:"consent"`
	Coupons        []CouponResponse `json:"coupons"`
}

// ConsentResponse says whether a customer gets marketing email.
type ConsentResponse struct {
	// EmailMarketing is the store's record (attribute
	// accepts_email_marketing): true, false, or null when the store sent none.
	EmailMarketing *bool `json:"email_marketing"`
	// UnsubscribedAt is when the customer unsubscribed, if they did.
	UnsubscribedAt *time.Time `json:"unsubscribed_at,omitempty"`
	// Suppressed is why the address is suppressed ("" when it is not).
	Suppressed string `json:"suppressed,omitempty"`
	// Marketing says whether marketing email may go out now.
	Marketing bool `json:"marketing"`
}

// CouponResponse is what a checkout needs to validate a code.
type CouponResponse struct {
	Code       string     `json:"code"`
	Kind       string     `json:"kind"`
	Value      float64    `json:"value"`
	Rule       string     `json:"rule"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RedeemedAt *time.Time `json:"redeemed_at"`
}

// CouponsResponse is the answer to GET /v1/customers/{id}/coupons.
type CouponsResponse struct {
	Coupons []CouponResponse `json:"coupons"`
}

// ErasureResponse is the answer to DELETE /v1/customers/{id}.
type ErasureResponse struct {
	// AnonymousID is the id the customer's aggregate history now lives under.
	AnonymousID string `json:"anonymous_id"`
	// OutboxFilesDeleted counts the .eml files of its emails deleted.
	OutboxFilesDeleted int `json:"outbox_files_deleted"`
}

// getCustomer answers a customer's facts, stage, consent and coupons; 404
// for an unknown (or erased) id.
func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) {
	id, ok := customerID(w, r)
	if !ok {
		return
	}
	st := store.New(s.cfg.Pool)
	c, err := st.GetCustomer(r.Context(), id)
	if errors.Is(err, store.ErrCustomerNotFound) {
		writeError(w, http.StatusNotFound, "", "no customer "+quote(id))
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	coupons, err := st.CustomerCoupons(r.Context(), id)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	var suppressed string
	if c.Email != "" {
		if suppressed, err = st.Suppressed(r.Context(), c.Email); err != nil {
			s.serverError(w, r, err)
			return
		}
	}
	resp := CustomerResponse{
		ID: c.ID, Email: c.Email, Name: c.Name, Timezone: c.Timezone, Stage: c.Stage,
		StageEnteredAt: timePtr(c.StageEnteredAt), CreatedAt: c.CreatedAt, LastSeenAt: timePtr(c.LastSeenAt),
		FirstOrderAt: timePtr(c.FirstOrderAt), LastOrderAt: timePtr(c.LastOrderAt),
		OrdersCount: c.OrdersCount, TotalSpent: c.TotalSpent, Attributes: c.Attributes,
		Consent: ConsentResponse{UnsubscribedAt: timePtr(c.UnsubscribedAt), Suppressed: suppressed},
		Coupons: couponResponses(coupons),
	}
	if resp.Attributes == nil {
		resp.Attributes = map[string]any{}
	}
	if v, ok := c.Attributes[store.ConsentAttribute].(bool); ok {
		resp.Consent.EmailMarketing = &v
	}
	resp.Consent.Marketing = c.Email != "" && suppressed == "" && c.UnsubscribedAt.IsZero() &&
		(resp.Consent.EmailMarketing == nil || *resp.Consent.EmailMarketing)
	writeJSON(w, http.StatusOK, resp)
}

// getCustomerCoupons answers a customer's coupons, newest first; 404 for
// an unknown id.
func (s *Server) getCustomerCoupons(w http.ResponseWriter, r *http.Request) {
	id, ok := customerID(w, r)
	if !ok {
		return
	}
	st := store.New(s.cfg.Pool)
	if _, err := st.GetCustomer(r.Context(), id); errors.Is(err, store.ErrCustomerNotFound) {
		writeError(w, http.StatusNotFound, "", "no customer "+quote(id))
		return
	} else if err != nil {
		s.serverError(w, r, err)
		return
	}
	coupons, err := st.CustomerCoupons(r.Context(), id)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, CouponsResponse{Coupons: couponResponses(coupons)})
}

// deleteCustomer erases a customer (store.EraseCustomer, in one
// transaction), then deletes the outbox files of its emails; 404 for an
// unknown id.
func (s *Server) deleteCustomer(w http.ResponseWriter, r *http.Request) {
	id, ok := customerID(w, r)
	if !ok {
		return
	}
	var erased store.Erased
	err := pgx.BeginFunc(r.Context(), s.cfg.Pool, func(tx pgx.Tx) error {
		var err error
		erased, err = store.New(tx).EraseCustomer(r.Context(), id, s.cfg.Now())
		return err
	})
	if errors.Is(err, store.ErrCustomerNotFound) {
		writeError(w, http.StatusNotFound, "", "no customer "+quote(id))
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	deleted := 0
	for _, f := range erased.OutboxFiles {
		if !strings.HasSuffix(f, ".eml") {
			continue // only ever the outbox's own files
		}
		switch err := os.Remove(f); {
		case err == nil:
			deleted++
		case errors.Is(err, os.ErrNotExist):
		default:
			s.cfg.Logger.ErrorContext(r.Context(), "server: erasure could not delete an outbox file; delete it by hand",
				slog.String("file", f), slog.String("error", err.Error()))
		}
	}
	writeJSON(w, http.StatusOK, ErasureResponse{AnonymousID: erased.AnonymousID, OutboxFilesDeleted: deleted})
}

// customerID reads and checks the {id} path value.
func customerID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := ingest.CheckCustomerID("id", id); err != nil {
		writeFieldError(w, err)
		return "", false
	}
	return id, true
}

func couponResponses(cs []*store.Coupon) []CouponResponse {
	out := make([]CouponResponse, len(cs))
	for i, c := range cs {
		out[i] = CouponResponse{Code: c.Code, Kind: c.Kind, Value: c.Value, Rule: c.Rule, CreatedAt: c.CreatedAt,
			ExpiresAt: timePtr(c.ExpiresAt), RedeemedAt: timePtr(c.RedeemedAt)}
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
