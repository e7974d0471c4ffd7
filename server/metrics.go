package server

import "github.com/ciclohq/ciclo/ingest"

// otherEventType labels events of a type no rule reacts to, so that clients
// sending arbitrary types cannot grow the metric's series without bound.
const otherEventType = "other"

// countIngested counts the events of a request that were stored (not
// duplicates), by type.
func (s *Server) countIngested(results []ingest.Result) {
	if s.cfg.Metrics == nil {
		return
	}
	rs := s.cfg.Rules.Load()
	for _, res := range results {
		if res.Duplicate {
			continue
		}
		typ := res.Type
		if len(rs.ForEvent(typ)) == 0 && !s.ingest.IsOrder(typ) && typ != EventCouponRedeemed {
			typ = otherEventType
		}
		s.cfg.Metrics.EventIngested(typ)
	}
}
