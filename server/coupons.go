package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

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

// validateCouponRedeemed checks a coupon_redeemed event's properties.code.
func validateCouponRedeemed(e *EventRequest) error {
	if e.Type != EventCouponRedeemed {
		return nil
	}
	code, ok := e.Properties["code"].(string)
	if !ok || strings.TrimSpace(code) == "" {
		return &inputError{field: "properties.code", msg: "required for coupon_redeemed: the code of the customer's coupon"}
	}
	return nil
}

// redeemCoupon applies a stored coupon_redeemed event (index i of the
// request) in the ingestion transaction.
func redeemCoupon(ctx context.Context, st *store.Store, e *store.NewEvent, i int, batch bool) error {
	code, _ := e.Properties["code"].(string)
	err := st.RedeemCoupon(ctx, e.CustomerID, code, e.OccurredAt)
	if errors.Is(err, store.ErrCouponNotFound) {
		field := "properties.code"
		if batch {
			field = "[" + strconv.Itoa(i) + "]." + field
		}
		return &errUnknownCoupon{field: field, customerID: e.CustomerID, code: code}
	}
	return err
}

// writeCouponError answers an unknown coupon with 422; it reports false
// for any other error.
func writeCouponError(w http.ResponseWriter, err error) bool {
	var uc *errUnknownCoupon
	if !errors.As(err, &uc) {
		return false
	}
	writeError(w, http.StatusUnprocessableEntity, uc.field, uc.Error())
	return true
}
