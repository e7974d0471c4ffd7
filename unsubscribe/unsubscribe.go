// Package unsubscribe makes and checks the signed tokens in unsubscribe links.
//
// A token carries the customer id and address it was made for, and an
// HMAC-SHA256 over both with the server's secret, so a link cannot be guessed
// or altered and needs no database lookup to verify.
package unsubscribe

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
)

// ErrInvalidToken is returned for a token that is malformed or not signed
// with this Signer's secret.
var ErrInvalidToken = errors.New("invalid unsubscribe token")

// Signer makes and verifies tokens with one secret.
type Signer struct {
	key     []byte
	baseURL string
}

// NewSigner returns a Signer whose links start with baseURL (the public URL
// of ciclo's HTTP server, e.g. https://ciclo.example.com). It panics on an
// empty secret, a programmer error: configuration validates it first.
func NewSigner(secret, baseURL string) *Signer {
	if secret == "" {
		panic("unsubscribe: empty secret")
	}
	return &Signer{key: []byte(secret), baseURL: strings.TrimRight(baseURL, "/")}
}

type payload struct {
	CustomerID string `json:"c"`
	Email      string `json:"e"`
}

// Token returns the token for a customer's address.
func (s *Signer) Token(customerID, email string) string {
	b, _ := json.Marshal(payload{CustomerID: customerID, Email: email})
	body := base64.RawURLEncoding.EncodeToString(b)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.mac(body))
}

// URL returns the one-click unsubscribe link for a customer's address.
func (s *Signer) URL(customerID, email string) string {
	return s.baseURL + "/unsubscribe/" + url.PathEscape(s.Token(customerID, email))
}

// Verify checks a token and returns the customer id and address it names.
func (s *Signer) Verify(token string) (customerID, email string, err error) {
	body, sig, ok := strings.Cut(token, ".")
	if !ok {
		return "", "", ErrInvalidToken
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(body)) {
		return "", "", ErrInvalidToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return "", "", ErrInvalidToken
	}
	var p payload
	if err := json.Unmarshal(raw, &p); err != nil || p.Email == "" {
		return "", "", ErrInvalidToken
	}
	return p.CustomerID, p.Email, nil
}

func (s *Signer) mac(body string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(body))
	return m.Sum(nil)
}
