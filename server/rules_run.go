package server

import (
	"errors"
	"net/http"

	"github.com/ciclohq/ciclo/internal/dryrun"
	"github.com/ciclohq/ciclo/jobs"
)

// runRuleResponse is the answer of POST /v1/rules/{name}/run.
type runRuleResponse struct {
	Rule string `json:"rule"`
	// JobID is the sweep's River job; Duplicate says it was enqueued
	// already this minute (a double click) and nothing new was queued.
	JobID     int64 `json:"job_id"`
	Duplicate bool  `json:"duplicate"`
}

// postRuleRun runs a scheduled rule's sweep now: 202 with the sweep's job,
// or with ?dry_run=true 200 with what it would do; 404 for an unknown
// rule, 409 for an event rule.
func (s *Server) postRuleRun(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rs := s.cfg.Rules.Load()
	now := s.cfg.Now()
	if q := r.URL.Query().Get("dry_run"); q == "true" || q == "1" {
		rep, err := dryrun.Campaign(r.Context(), s.cfg.Pool, rs, name, now)
		if err != nil && rs.Rule(name) == nil {
			writeError(w, http.StatusNotFound, "name", "no rule "+name+" in the rules file")
			return
		}
		if err != nil && rs.Rule(name).Schedule == "" {
			writeError(w, http.StatusConflict, "name", err.Error())
			return
		}
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
		return
	}
	id, dup, err := jobs.RunRuleNow(r.Context(), s.cfg.River, rs, name, now)
	switch {
	case errors.Is(err, jobs.ErrRuleNotFound):
		writeError(w, http.StatusNotFound, "name", "no rule "+name+" in the rules file")
	case errors.Is(err, jobs.ErrRuleNotScheduled):
		writeError(w, http.StatusConflict, "name", "rule "+name+" is an event rule; only scheduled rules run on demand")
	case err != nil:
		s.serverError(w, r, err)
	default:
		writeJSON(w, http.StatusAccepted, runRuleResponse{Rule: name, JobID: id, Duplicate: dup})
	}
}
