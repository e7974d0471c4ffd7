// Package ingest is the one way events enter ciclo: the events API, the
// Shopify and WooCommerce webhooks and `ciclo import --trigger` all produce
// Events and hand them to Service.Ingest, which checks them and runs the one
// ingest transaction (events, customer facts, coupon redemptions, evaluate
// jobs).
//
// Its checks refuse text ciclo cannot store or mail as sent, with an error
// that names the field, never rewritten. It knows nothing of HTTP: callers
// map ErrMalformed and ErrInvalid to their own answers (the API answers 400
// and 422).
package ingest
