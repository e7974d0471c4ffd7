package store

// The order event types. An order_placed event adds to a customer's order
// facts; an order_cancelled or order_refunded event naming the order's
// order_id corrects them (the ingest statement, store/sql/events.sql) and
// takes back the points the order earned. Every way in (the events API,
// the store integrations, CSV import) stores orders under these types.
const (
	EventOrderPlaced    = "order_placed"
	EventOrderCancelled = "order_cancelled"
	EventOrderRefunded  = "order_refunded"
)
