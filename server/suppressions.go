package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/store"
)

// maxSuppressionBody caps a suppression request body: it holds one address.
const maxSuppressionBody = 4 << 10

// SuppressionRequest is the body of POST /v1/suppressions.
type SuppressionRequest struct {
	// Email is the address to suppress. Required.
	Email string `json:"email"`
	// Reason is "manual" (default), "unsubscribed" or "bounced" (for lists
	// imported from another sender).
	Reason string `json:"reason,omitempty"`
	// Detail is a free note kept with the suppression.
	Detail string `json:"detail,omitempty"`
}

// SuppressionResponse is a suppression as the API returns it.
type SuppressionResponse struct {
	Email     string    `json:"email"`
	Reason    string    `json:"reason"`
	Detail    string    `json:"detail"`
	CreatedAt time.Time `json:"created_at"`
}

// postSuppression adds an address to the suppression list: 201 with the new
// suppression, or 200 with the existing one (its first reason is kept).
func (s *Server) postSuppression(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSuppressionBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("body is larger than %d bytes", maxSuppressionBody))
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "", "read request body: "+err.Error())
		return
	}
	var req SuppressionRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			name = strings.Trim(name, `"`)
			writeError(w, http.StatusBadRequest, name, fmt.Sprintf("unknown field %q; accepted fields: email, reason, detail", name))
			return
		}
		ie, _ := asInputError(jsonError(err, body))
		writeError(w, http.StatusBadRequest, ie.field, ie.msg)
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "", "unexpected data after the JSON object")
		return
	}
	// The same text checks as events: no invalid UTF-8, lone surrogates or
	// NULs anywhere, and a one-line address within RFC 5321's limits.
	if err := ingest.CheckJSONText(body); err != nil {
		writeFieldError(w, err)
		return
	}
	if err := ingest.CheckEmail("email", req.Email); err != nil {
		writeFieldError(w, err)
		return
	}
	if req.Reason == "" {
		req.Reason = store.SuppressManual
	}
	switch req.Reason {
	case store.SuppressManual, store.SuppressUnsubscribed, store.SuppressBounced:
	default:
		writeError(w, http.StatusUnprocessableEntity, "reason", fmt.Sprintf("%q is not a reason: use manual, unsubscribed or bounced", req.Reason))
		return
	}
	sp, created, err := store.New(s.cfg.Pool).InsertSuppression(r.Context(), store.Suppression{
		Email: req.Email, Reason: req.Reason, Detail: req.Detail, CreatedAt: s.cfg.Now(),
	})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, suppressionResponse(sp))
}

// getSuppression answers whether an address is suppressed: 200 or 404.
func (s *Server) getSuppression(w http.ResponseWriter, r *http.Request) {
	if err := ingest.CheckString("email", r.PathValue("email")); err != nil {
		writeFieldError(w, err)
		return
	}
	sp, err := store.New(s.cfg.Pool).GetSuppression(r.Context(), r.PathValue("email"))
	switch {
	case errors.Is(err, store.ErrSuppressionNotFound):
		writeError(w, http.StatusNotFound, "", "address not suppressed")
	case err != nil:
		s.serverError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, suppressionResponse(sp))
	}
}

// deleteSuppression lifts a suppression (and the unsubscribed mark of the
// address's customers): 204, or 404 if the address was not suppressed.
func (s *Server) deleteSuppression(w http.ResponseWriter, r *http.Request) {
	if err := ingest.CheckString("email", r.PathValue("email")); err != nil {
		writeFieldError(w, err)
		return
	}
	err := store.New(s.cfg.Pool).RemoveSuppression(r.Context(), r.PathValue("email"))
	switch {
	case errors.Is(err, store.ErrSuppressionNotFound):
		writeError(w, http.StatusNotFound, "", "address not suppressed")
	case err != nil:
		s.serverError(w, r, err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.cfg.Logger.ErrorContext(r.Context(), "server: request failed", slog.String("route", r.Pattern), slog.String("error", err.Error()))
	writeError(w, http.StatusServiceUnavailable, "", "the database did not answer; try again")
}

func suppressionResponse(sp *store.Suppression) SuppressionResponse {
	return SuppressionResponse{Email: sp.Email, Reason: sp.Reason, Detail: sp.Detail, CreatedAt: sp.CreatedAt}
}
