// Package hmacsig checks the base64 HMAC-SHA256 body signatures that
// Shopify and WooCommerce put on their webhooks.
package hmacsig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

var (
	// ErrNoSecret is returned when no secret is configured.
	ErrNoSecret = errors.New("no secret configured")
	// ErrMissing is returned for an empty signature.
	ErrMissing = errors.New("missing signature")
	// ErrMismatch is returned when no secret produces the signature.
	ErrMismatch = errors.New("signature does not match the body for any configured secret")
)

// Sign returns base64(HMAC-SHA256(secret, body)).
func Sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify checks signature against body under each secret in constant time,
// so that a rotated secret and its successor both verify.
func Verify(body []byte, signature string, secrets []string) error {
	if len(secrets) == 0 {
		return ErrNoSecret
	}
	if signature == "" {
		return ErrMissing
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(signature))
	if err != nil {
		return ErrMismatch
	}
	for _, secret := range secrets {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if hmac.Equal(mac.Sum(nil), got) {
			return nil
		}
	}
	return ErrMismatch
}

// Secrets splits a comma-separated list of secrets (as CICLO_SHOPIFY_SECRET
// holds during a rotation), dropping blanks.
func Secrets(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
