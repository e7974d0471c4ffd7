package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/ciclohq/ciclo/internal/dryrun"
	"github.com/ciclohq/ciclo/report"
	"github.com/ciclohq/ciclo/store"
)

// reportTimeout bounds one report's queries.
const reportTimeout = 2 * time.Minute

// Report names served at GET /v1/reports/{name}.
const (
	reportLifecycle = "lifecycle"
	reportRules     = "rules"
)

// reportRoutes are the reports API (bearer token) and the dashboard (the
// River UI's login: a session cookie, the API token or the UI user's basic
// auth).
func (o *Ops) reportRoutes() []Route {
	return append([]Route{
		{Pattern: "GET /v1/reports/{name}", Auth: AuthToken, Timeout: reportTimeout, Handler: http.HandlerFunc(o.getReport)},
	}, o.dashboardRoutes()...)
}

// reportParams reads period, from and to (YYYY-MM-DD, to included) from
// the query string, as `ciclo report` reads its flags, with the rule set's
// stages and rule names.
func (o *Ops) reportParams(r *http.Request) (report.Params, error) {
	q := r.URL.Query()
	p, err := report.ParseParams(q.Get("period"), q.Get("from"), q.Get("to"), time.Now())
	if err != nil {
		return p, err
	}
	return p.WithRuleSet(o.cfg.Rules.Load()), nil
}

// buildReports runs the named reports in one read-only snapshot.
func (o *Ops) buildReports(ctx context.Context, p report.Params, life bool, rules bool) (*report.Lifecycle, *report.Rules, error) {
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	var (
		l  *report.Lifecycle
		rr *report.Rules
	)
	err := dryrun.ReadOnly(ctx, o.cfg.Pool, func(st *store.Store) error {
		var err error
		if life {
			if l, err = report.Build(ctx, st, p); err != nil {
				return err
			}
		}
		if rules {
			rr, err = report.BuildRules(ctx, st, p)
		}
		return err
	})
	return l, rr, err
}

// getReport answers GET /v1/reports/{name} with the same JSON as
// `ciclo report [rules] --format json`.
func (o *Ops) getReport(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name != reportLifecycle && name != reportRules {
		writeError(w, http.StatusNotFound, "name", "no report "+quote(name)+": use /v1/reports/lifecycle or /v1/reports/rules")
		return
	}
	p, err := o.reportParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "", err.Error())
		return
	}
	l, rr, err := o.buildReports(r.Context(), p, name == reportLifecycle, name == reportRules)
	if err != nil {
		o.reportFailed(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	if name == reportRules {
		_ = report.WriteJSON(w, rr)
		return
	}
	_ = report.WriteJSON(w, l)
}

func (o *Ops) reportFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, report.ErrBadParams) {
		writeError(w, http.StatusBadRequest, "", err.Error())
		return
	}
	o.cfg.Logger.ErrorContext(r.Context(), "server: report failed", slog.String("error", err.Error()))
	writeError(w, http.StatusServiceUnavailable, "", "report failed, retry later: "+err.Error())
}

func quote(s string) string { return `"` + s + `"` }
