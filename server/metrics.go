package server

import "github.com/ciclohq/ciclo/store"

// countIngested counts the events of a request that were stored (not
// duplicates), by type; events and resp are in request order.
func (s *Server) countIngested(events []*store.NewEvent, resp EventsResponse) {
	if s.cfg.Metrics == nil {
		return
	}
	for i, e := range events {
		if !resp.Events[i].Duplicate {
			s.cfg.Metrics.EventIngested(e.Type)
		}
	}
}
