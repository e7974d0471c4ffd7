package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/store"
)

// EventCouponRedeemed is the event type that marks a coupon redeemed; its
// properties.code names the coupon, which must be the customer's.
const EventCouponRedeemed = "coupon_redeemed"

// errUnknownCoupon fails a batch whose coupon_redeemed event names a code
// the customer does not have; it is answered 422 and nothing is stored.
type errUnknownCoupon struct {
	field, customerID, code string
}

func (e *errUnknownCoupon) Error() string {
	return e.field + `: customer "` + e.customerID + `" has no coupon "` + e.code + `"`
}

// errCouponRedeemed fails a batch whose coupon_redeemed event names a coupon
// redeemed before; it is answered 409 and nothing is stored.
type errCouponRedeemed struct {
	field string
	err   *store.CouponRedeemedError
}

func (e *errCouponRedeemed) Error() string {
	return e.field + `: coupon "` + e.err.Code + `" of customer "` + e.err.CustomerID + `" was already redeemed at ` +
		e.err.RedeemedAt.UTC().Format(time.RFC3339) + "; nothing was stored"
}

// validateCouponRedeemed checks a coupon_redeemed event's properties.code.
func validateCouponRedeemed(e *EventRequest) error {
	if e.Type != EventCouponRedeemed {
		return nil
	}
	code, ok := e.Properties["code"].(string)
	if !ok || strings.TrimSpace(code) == "" {
		return &ingest.FieldError{Field: "properties.code", Kind: ingest.ErrInvalid, Message: "required for coupon_redeemed: the code of the customer's coupon"}
	}
	return nil
}

// redeemCoupon applies a stored coupon_redeemed event (index i of the
// request) in the ingestion transaction. Codes match whatever their case.
func redeemCoupon(ctx context.Context, st *store.Store, e *store.NewEvent, i int, batch bool) error {
	code, _ := e.Properties["code"].(string)
	err := st.RedeemCoupon(ctx, e.CustomerID, code, e.OccurredAt)
	field := "properties.code"
	if batch {
		field = "[" + strconv.Itoa(i) + "]." + field
	}
	var redeemed *store.CouponRedeemedError
	switch {
	case errors.Is(err, store.ErrCouponNotFound):
		return &errUnknownCoupon{field: field, customerID: e.CustomerID, code: code}
	case errors.As(err, &redeemed):
		return &errCouponRedeemed{field: field, err: redeemed}
	}
	return err
}

// writeCouponError answers an unknown coupon with 422 and a coupon redeemed
// before with 409; it reports false for any other error.
func writeCouponError(w http.ResponseWriter, err error) bool {
	var (
		uc *errUnknownCoupon
		cr *errCouponRedeemed
	)
	switch {
	case errors.As(err, &uc):
		writeError(w, http.StatusUnprocessableEntity, uc.field, uc.Error())
	case errors.As(err, &cr):
		writeError(w, http.StatusConflict, cr.field, cr.Error())
	default:
		return false
	}
	return true
}
