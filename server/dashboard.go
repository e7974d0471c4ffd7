package server

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/internal/dryrun"
	"github.com/ciclohq/ciclo/report"
	"github.com/ciclohq/ciclo/store"
)

// timelineLimitDefault is how many timeline entries a customer page shows.
const timelineLimitDefault = 500

//go:embed dashboard
var dashboardFiles embed.FS

var dashboardTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"pct": func(r *float64) string {
		if r == nil {
			return "–"
		}
		return fmt.Sprintf("%.1f%%", 100**r)
	},
	"pctf":  func(r float64) string { return fmt.Sprintf("%.0f%%", 100*r) },
	"alpha": func(r float64) string { return fmt.Sprintf("%.2f", 0.05+0.6*r) },
	"num": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return fmt.Sprintf("%.1f", *v)
	},
	"day":   func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"month": func(t time.Time) string { return t.UTC().Format("2006-01") },
	"ts":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"bar":   funnelBar,
	"money": func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"seq": func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i + 1
		}
		return out
	},
}).ParseFS(dashboardFiles, "dashboard/*.html"))

// dashboardRoutes are /dashboard/: the overview, customer pages and the
// embedded stylesheet, behind the River UI's login.
func (o *Ops) dashboardRoutes() []Route {
	static, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the embedded directory is part of the build
	}
	return []Route{
		{Pattern: "GET /dashboard", Auth: AuthPublic, Timeout: o.cfg.RequestTimeout, Handler: http.RedirectHandler("/dashboard/", http.StatusMovedPermanently)},
		{Pattern: "GET /dashboard/{$}", Auth: AuthUI, SameOrigin: true, Timeout: reportTimeout, Handler: http.HandlerFunc(o.dashboard)},
		{Pattern: "GET /dashboard/customers", Auth: AuthUI, SameOrigin: true, Timeout: o.cfg.RequestTimeout, Handler: http.HandlerFunc(o.customerLookup)},
		{Pattern: "GET /dashboard/customers/{id}", Auth: AuthUI, SameOrigin: true, Timeout: o.cfg.RequestTimeout, Handler: http.HandlerFunc(o.customerPage)},
		{Pattern: "GET /dashboard/static/", Auth: AuthUI, SameOrigin: true, Timeout: o.cfg.RequestTimeout, Handler: http.StripPrefix("/dashboard/static/", http.FileServerFS(static))},
	}
}

// overview is what the dashboard's front page shows.
type overview struct {
	L            *report.Lifecycle
	R            *report.Rules
	Labels       []string
	Largest      int64
	Charts       []template.HTML
	Period       string
	From, To     string
	MaxK         int
	Error        string
	RulesVersion string
}

func (o *Ops) dashboard(w http.ResponseWriter, r *http.Request) {
	p, err := o.reportParams(r)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		o.render(w, r, "error.html", map[string]string{"Error": err.Error()})
		return
	}
	l, rr, err := o.buildReports(r.Context(), p, true, true)
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, report.ErrBadParams) {
			status = http.StatusBadRequest
		}
		o.cfg.Logger.ErrorContext(r.Context(), "server: dashboard report failed", slog.String("error", err.Error()))
		w.WriteHeader(status)
		o.render(w, r, "error.html", map[string]string{"Error": err.Error()})
		return
	}
	v := &overview{L: l, R: rr, Period: l.Period, From: l.From.Format(time.DateOnly),
		To: l.To.Add(-time.Nanosecond).Format(time.DateOnly)}
	if rs := o.cfg.Rules.Load(); rs != nil {
		v.RulesVersion = rs.Version
	}
	for _, s := range l.Funnel {
		v.Largest = max(v.Largest, s.Customers)
	}
	for _, ps := range l.Periods {
		v.Labels = append(v.Labels, l.Label(ps))
	}
	for _, c := range l.Cohorts {
		v.MaxK = max(v.MaxK, len(c.Rates))
	}
	v.Charts = overviewCharts(l, v.Labels)
	o.render(w, r, "index.html", v)
}

// overviewCharts draws the stage mix, the flows into each stage, churn
// and repeat rates, and NPS and CSAT, per period.
func overviewCharts(l *report.Lifecycle, labels []string) []template.HTML {
	f := func(v float64) *float64 { return &v }
	pctOf := func(r *float64) *float64 {
		if r == nil {
			return nil
		}
		return f(100 * *r)
	}
	var mix, entries []series
	for i, s := range l.Funnel {
		m, e := series{Name: s.Stage}, series{Name: s.Stage}
		for _, ps := range l.Periods {
			m.Values = append(m.Values, f(float64(ps.Stages[i].Customers)))
			var in int64
			for _, fl := range ps.Flows {
				if fl.To == s.Stage {
					in += fl.Customers
				}
			}
			e.Values = append(e.Values, f(float64(in)))
		}
		mix, entries = append(mix, m), append(entries, e)
	}
	churn, repeat := series{Name: "churn rate"}, series{Name: "repeat purchase rate"}
	nps, csat := series{Name: "NPS"}, series{Name: "CSAT (% satisfied)"}
	for _, ps := range l.Periods {
		churn.Values = append(churn.Values, pctOf(ps.Churn.Rate))
		repeat.Values = append(repeat.Values, pctOf(ps.Repeat.Rate))
		nps.Values = append(nps.Values, ps.NPS.Value)
		csat.Values = append(csat.Values, ps.CSAT.Value)
	}
	return []template.HTML{
		stackedBars("Customers per stage at the end of each period", labels, mix),
		lineChart("Stage flow: customers entering each stage per period", labels, entries, ""),
		lineChart("Churn and repeat purchase rate", labels, []series{churn, repeat}, "%"),
		lineChart("NPS and CSAT", labels, []series{nps, csat}, ""),
	}
}

// customerView is a customer page.
type customerView struct {
	C       *store.Customer
	Entries []timelineRow
	Limited bool
}

// timelineRow is one timeline entry as the page shows it.
type timelineRow struct {
	At     time.Time
	Kind   string
	Rule   string
	Detail string
}

func (o *Ops) customerLookup(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	if id == "" {
		http.Redirect(w, r, "/dashboard/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/dashboard/customers/"+url.PathEscape(id), http.StatusSeeOther)
}

func (o *Ops) customerPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := ingest.CheckCustomerID("id", id); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		o.render(w, r, "error.html", map[string]string{"Error": err.Error()})
		return
	}
	var (
		c       *store.Customer
		entries []*store.TimelineEntry
	)
	err := dryrun.ReadOnly(r.Context(), o.cfg.Pool, func(st *store.Store) error {
		var err error
		if c, err = st.GetCustomer(r.Context(), id); err != nil {
			return err
		}
		entries, err = st.Timeline(r.Context(), id, timelineLimitDefault)
		return err
	})
	if errors.Is(err, store.ErrCustomerNotFound) {
		w.WriteHeader(http.StatusNotFound)
		o.render(w, r, "error.html", map[string]string{"Error": fmt.Sprintf("no customer %q: check the id (the store's customer id)", id)})
		return
	}
	if err != nil {
		o.cfg.Logger.ErrorContext(r.Context(), "server: customer page failed", slog.String("error", err.Error()))
		w.WriteHeader(http.StatusServiceUnavailable)
		o.render(w, r, "error.html", map[string]string{"Error": err.Error()})
		return
	}
	v := customerView{C: c, Limited: len(entries) == timelineLimitDefault}
	for _, e := range entries {
		v.Entries = append(v.Entries, timelineRow{At: e.At, Kind: e.Kind, Rule: e.Rule, Detail: describeDetail(e.Detail)})
	}
	o.render(w, r, "customer.html", v)
}

// describeDetail writes an entry's details as "key=value" pairs, sorted,
// leaving out empty ones.
func describeDetail(d map[string]any) string {
	keys := make([]string, 0, len(d))
	for k, v := range d {
		if v == nil || v == "" {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := d[k]
		s, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		parts[i] = k + "=" + s
	}
	return strings.Join(parts, "  ")
}

func (o *Ops) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
	if err := dashboardTemplates.ExecuteTemplate(w, name, data); err != nil {
		o.cfg.Logger.ErrorContext(r.Context(), "server: render dashboard", slog.String("page", name), slog.String("error", err.Error()))
	}
}
