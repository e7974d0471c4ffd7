package server

import "github.com/ciclohq/ciclo/store"

// otherEventType labels events of a type no rule reacts to, so that clients
// sending arbitrary types cannot grow the metric's series without bound.
const otherEventType = "other"

// countIngested counts the events of a request that were stored (not
// duplicates), by type; events and resp are in request order.
func (s *Server) countIngested(events []*store.NewEvent, resp EventsResponse) {
	if s.cfg.Metrics == nil {
		return
	}
	rs := s.cfg.Rules.Load()
	for i, e := range events {
		if resp.Events[i].Duplicate {
			continue
		}
		typ := e.Type
		if len(rs.ForEvent(typ)) == 0 && !s.orderEvents[typ] && typ != EventCouponRedeemed {
			typ = otherEventType
		}
		s.cfg.Metrics.EventIngested(typ)
	}
}
