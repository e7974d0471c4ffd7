package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/integrations/shopify"
	"github.com/ciclohq/ciclo/integrations/woocommerce"
	"github.com/ciclohq/ciclo/store"
)

// ShopifyMaxAgeDefault is how old (by X-Shopify-Triggered-At) a Shopify
// delivery of an event ciclo has not seen may be: Shopify retries a failed
// delivery for hours, an attacker replaying a captured one for longer.
const ShopifyMaxAgeDefault = 24 * time.Hour

// IntegrationResponse is the answer to a store's webhook delivery.
type IntegrationResponse struct {
	// Events are the stored events, in the order the payload mapped to.
	Events []EventResult `json:"events"`
	// Ignored says why nothing was stored (unknown topic, guest order, ping).
	Ignored string `json:"ignored,omitempty"`
}

// verifyShopify is the signature check of POST /v1/integrations/shopify.
func (s *Server) verifyShopify(h http.Header, body []byte) error {
	return shopify.Verify(body, h.Get(shopify.HeaderHmac), s.cfg.ShopifySecrets)
}

// verifyWooCommerce is the signature check of POST
// /v1/integrations/woocommerce; the unsigned ping of webhook creation passes
// (its handler answers it without writing anything).
func (s *Server) verifyWooCommerce(h http.Header, body []byte) error {
	if woocommerce.IsPing(h, body) {
		return nil
	}
	return woocommerce.Verify(body, h.Get(woocommerce.HeaderSignature), s.cfg.WooCommerceSecrets)
}

// postShopify stores a verified Shopify delivery's events: replays of an
// event (the same resource's key) change nothing, unknown topics and guest
// orders are ignored, a refund takes the customer of its order, and a
// delivery triggered longer than ShopifyMaxAge ago is refused unless its
// events are known already.
func (s *Server) postShopify(w http.ResponseWriter, r *http.Request) {
	body := signedBody(r)
	d := shopify.ReadDelivery(r.Header)
	log := s.cfg.Logger.With(slog.String("topic", d.Topic), slog.String("shopify_event_id", d.EventID), slog.String("shop", d.Shop))
	res, err := shopify.Map(d, body)
	events, ok := s.mappedEvents(w, r, log, res.Events, res.Ignored, err)
	if !ok {
		return
	}
	if d.EventID != "" {
		for _, e := range events {
			e.Properties["shopify_event_id"] = d.EventID
		}
	}
	if res.CustomerOfOrder != "" {
		customer, err := store.New(s.cfg.Pool).CustomerOfEventKey(r.Context(), res.CustomerOfOrder)
		if errors.Is(err, store.ErrCustomerNotFound) {
			s.ignored(w, r, log, "the order was never stored (placed before the webhook was set up, or a guest order)")
			return
		}
		if err != nil {
			s.dbError(w, r, "find the order's customer", err)
			return
		}
		for _, e := range events {
			e.CustomerID = customer
		}
	}
	if !d.TriggeredAt.IsZero() && s.cfg.Now().Sub(d.TriggeredAt) > s.cfg.ShopifyMaxAge {
		known, err := s.allKnown(r.Context(), events)
		if err != nil {
			s.dbError(w, r, "check the delivery's events", err)
			return
		}
		if !known {
			writeError(w, http.StatusBadRequest, shopify.HeaderTriggeredAt, fmt.Sprintf(
				"delivery triggered at %s is older than %s and its event is unknown; nothing was stored (CICLO_SHOPIFY_MAX_AGE sets the bound)",
				d.TriggeredAt.UTC().Format(time.RFC3339), s.cfg.ShopifyMaxAge))
			return
		}
	}
	s.ingestDelivery(w, r, events)
}

// postWooCommerce stores a verified WooCommerce delivery's events, and
// answers the ping of webhook creation 200 without writing anything.
func (s *Server) postWooCommerce(w http.ResponseWriter, r *http.Request) {
	body := signedBody(r)
	if woocommerce.IsPing(r.Header, body) {
		writeJSON(w, http.StatusOK, IntegrationResponse{Events: []EventResult{}, Ignored: "ping"})
		return
	}
	topic := r.Header.Get(woocommerce.HeaderTopic)
	log := s.cfg.Logger.With(slog.String("topic", topic), slog.String("source", r.Header.Get(woocommerce.HeaderSource)))
	res, err := woocommerce.Map(topic, body)
	if events, ok := s.mappedEvents(w, r, log, res.Events, res.Ignored, err); ok {
		s.ingestDelivery(w, r, events)
	}
}

// mappedEvents answers a delivery that did not map (400) or maps to
// nothing ciclo stores (200, ignored); otherwise ok is true and events are
// what to ingest.
func (s *Server) mappedEvents(w http.ResponseWriter, r *http.Request, log *slog.Logger, mapped []ingest.Event, ignored string, err error) (events []*ingest.Event, ok bool) {
	if err != nil {
		writeError(w, http.StatusBadRequest, "", err.Error())
		return nil, false
	}
	if ignored != "" {
		s.ignored(w, r, log, ignored)
		return nil, false
	}
	events = make([]*ingest.Event, len(mapped))
	for i := range mapped {
		events[i] = &mapped[i]
	}
	return events, true
}

// ingestDelivery stores a delivery's events through the one ingest path:
// keyed by the store's resource ids (a replay is a duplicate whatever the
// rebuilt payload), ciclo coupons among an order's discount codes redeemed.
func (s *Server) ingestDelivery(w http.ResponseWriter, r *http.Request, events []*ingest.Event) {
	results, err := s.ingest.Ingest(r.Context(), events, ingest.Options{KeyOnly: true, RedeemDiscountCodes: true})
	if err != nil {
		s.writeIngestError(w, r, err, len(events))
		return
	}
	resp := IntegrationResponse{Events: make([]EventResult, len(results))}
	for i, res := range results {
		resp.Events[i] = EventResult{ID: res.ID, Duplicate: res.Duplicate}
	}
	s.countIngested(results)
	writeJSON(w, http.StatusOK, resp)
}

// ignored answers 200 for a delivery ciclo does not map, so that the store
// does not retry it, and logs why at debug.
func (s *Server) ignored(w http.ResponseWriter, r *http.Request, log *slog.Logger, why string) {
	log.DebugContext(r.Context(), "server: webhook delivery ignored", slog.String("reason", why))
	writeJSON(w, http.StatusOK, IntegrationResponse{Events: []EventResult{}, Ignored: why})
}

// dbError answers 503 for a failed database call, logged with the detail.
func (s *Server) dbError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.cfg.Logger.ErrorContext(r.Context(), "server: "+what+" failed", slog.String("error", err.Error()))
	writeError(w, http.StatusServiceUnavailable, "", "nothing stored, retry: "+err.Error())
}

// allKnown reports whether every event's idempotency key is stored already.
func (s *Server) allKnown(ctx context.Context, events []*ingest.Event) (bool, error) {
	st := store.New(s.cfg.Pool)
	for _, e := range events {
		known, err := st.EventKeyKnown(ctx, e.CustomerID, e.IdempotencyKey)
		if err != nil || !known {
			return false, err
		}
	}
	return true, nil
}

// requireSignature lets a request through when verify accepts the
// signature headers for the raw body, and hands the handler that body
// (signedBody).
func requireSignature(verify func(http.Header, []byte) error, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit))
				return
			}
			writeError(w, http.StatusBadRequest, "", "read request body: "+err.Error())
			return
		}
		if err := verify(r.Header, body); err != nil {
			w.Header().Set("WWW-Authenticate", `HMAC-SHA256 realm="ciclo"`)
			writeError(w, http.StatusUnauthorized, "", err.Error()+"; nothing was stored")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), signedBodyKey{}, body)))
	})
}

// signedBodyKey is the context key of the body requireSignature verified.
type signedBodyKey struct{}

// signedBody is the raw body requireSignature read and verified, so the
// handler maps exactly the bytes whose signature was checked without
// reading them again.
func signedBody(r *http.Request) []byte {
	body, _ := r.Context().Value(signedBodyKey{}).([]byte)
	return body
}
