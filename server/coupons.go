package server

import "github.com/ciclohq/ciclo/ingest"

// EventCouponRedeemed is the event type that marks a coupon redeemed; its
// properties.code names the coupon, which must be the customer's.
const EventCouponRedeemed = ingest.EventCouponRedeemed
