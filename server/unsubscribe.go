package server

import (
	"html/template"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/ciclohq/ciclo/store"
)

var unsubscribePage = template.Must(template.New("unsubscribe").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Unsubscribe</title></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto">
{{if .Done}}<h1>You are unsubscribed</h1><p>{{.Email}} will get no more marketing email from us.</p>
{{else}}<h1>Unsubscribe?</h1><p>Stop marketing email to {{.Email}}.</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form>{{end}}
</body></html>`))

// unsubscribePage shows a confirmation form. GET never unsubscribes: mail
// scanners follow links.
func (s *Server) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	_, email, err := s.cfg.Unsubscribe.Verify(r.PathValue("token"))
	if err != nil {
		http.Error(w, "This unsubscribe link is not valid. Use the link from a recent email.", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = unsubscribePage.Execute(w, map[string]any{"Email": email})
}

// unsubscribe handles the confirmation form and RFC 8058 one-click POSTs.
func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	customerID, email, err := s.cfg.Unsubscribe.Verify(r.PathValue("token"))
	if err != nil {
		http.Error(w, "This unsubscribe link is not valid. Use the link from a recent email.", http.StatusNotFound)
		return
	}
	err = pgx.BeginFunc(r.Context(), s.cfg.Pool, func(tx pgx.Tx) error {
		return store.New(tx).Unsubscribe(r.Context(), customerID, email, s.cfg.Now())
	})
	if err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "server: unsubscribe failed", slog.String("error", err.Error()))
		http.Error(w, "Unsubscribing failed; please try again.", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = unsubscribePage.Execute(w, map[string]any{"Email": email, "Done": true})
}
