// Package channels delivers rendered messages: email over SMTP (go-mail, pooled and reused
// connections), email into an outbox directory of .eml files, and signed webhooks over HTTP.
//
// Every adapter implements Channel. Failures are returned as *SendError, which tells the
// caller whether retrying can help (IsPermanent); the caller owns retries and backoff.
package channels

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ResponseExcerptMax is the most bytes of a server or endpoint response kept in Result.Response.
const ResponseExcerptMax = 512

// Channel names: what Channel.Name returns and a delivery row stores.
const (
	EmailName   = "email"
	WebhookName = "webhook"
)

// Sentinel errors, wrapped in a *SendError (or returned as is by constructors).
var (
	// ErrClosed is returned by Send after Close.
	ErrClosed = errors.New("channel closed")
	// ErrInvalidMessage means the Message cannot be sent as given (bad address, missing id,
	// header injection, empty body). It is always permanent.
	ErrInvalidMessage = errors.New("invalid message")
	// ErrTargetRefused means a webhook target resolves to an address ciclo refuses to call
	// (loopback, private, link-local, ...). It is always permanent.
	ErrTargetRefused = errors.New("webhook target refused")
)

// Message is one outbound message. A channel reads the fields it needs and ignores the rest.
type Message struct {
	// ID identifies the delivery: stable across retries of the same delivery. Email uses it as
	// the Message-ID local part (<ID@domain>, the domain from From's address; see MessageID),
	// so for email it should also be globally unique (hold a random part); webhooks send it as
	// the webhook-id header. It must be a dot-atom (letters, digits, and
	// !#$%&'*+-/=?^_`{|}~.), e.g. a UUID or an integer.
	ID string

	// From is the sender, a bare address or "Name <address>".
	From string
	// To is the recipient's bare address; ToName, optional, is their display name.
	To, ToName string
	// Subject is the email subject, one line.
	Subject string
	// HTML and Text are the two bodies; at least one is required. With both, the email is
	// multipart/alternative.
	HTML, Text string
	// Headers are extra email headers, e.g. List-Unsubscribe and List-Unsubscribe-Post.
	// Structural headers (From, To, Subject, Message-ID, Date, MIME and Content-* headers)
	// cannot be set here. Webhooks send them as extra HTTP headers.
	Headers map[string]string

	// URL is the webhook endpoint (http or https).
	URL string
	// Secret is the webhook signing secret; see Sign.
	Secret string
	// Body is the webhook's JSON body.
	Body []byte
}

// Result describes an accepted message.
type Result struct {
	// ProviderID identifies the message to the provider: the email Message-ID (with angle
	// brackets) or the webhook-id.
	ProviderID string
	// StatusCode is the SMTP reply code (250) or HTTP status code; 0 for the outbox.
	StatusCode int
	// Response is an excerpt (at most ResponseExcerptMax bytes) of the server's reply or the
	// endpoint's response body; for the outbox, the path of the written file.
	Response string
}

// Channel is one delivery adapter. Implementations are safe for concurrent use.
type Channel interface {
	// Name is the channel kind: EmailName or WebhookName.
	Name() string
	// Send delivers m. Errors are *SendError (test with IsPermanent), or wrap ctx.Err() in a
	// retryable *SendError when ctx ends first.
	Send(ctx context.Context, m *Message) (Result, error)
	// Close releases connections. Send after Close fails with ErrClosed.
	Close() error
}

var (
	_ Channel = (*SMTP)(nil)
	_ Channel = (*Outbox)(nil)
	_ Channel = (*Webhook)(nil)
)

// Bounce classes (SendError.Bounce): how an SMTP rejection is read, from where it came and
// its RFC 3463 enhanced status code.
const (
	// BounceMailbox is a 5.1.x reply to RCPT TO or to the end of DATA: the recipient's
	// mailbox or domain does not exist. The one class that means the address is bad.
	BounceMailbox = "mailbox"
	// BouncePolicy is a 5.7.x reply: refused by policy (spam, reputation, DMARC). It says
	// nothing about the address.
	BouncePolicy = "policy"
	// BouncePermanent is any other 5xx reply, including one without an enhanced code.
	BouncePermanent = "permanent"
	// BounceTransient is a 4xx reply: try again later.
	BounceTransient = "transient"
	// BounceConfig is a configuration error: the server does not offer STARTTLS, the TLS
	// handshake failed, the credentials or the sender were refused. Not permanent (the
	// message is fine) but not worth backing off for hours either: it needs a fix.
	BounceConfig = "config"
)

// SendError classifies a failed send. Permanent means retrying cannot help: an SMTP 5xx reply
// (e.g. 550 5.1.1 unknown user), an HTTP 4xx other than 408 and 429, an invalid message or a
// refused webhook target. Otherwise (SMTP 4xx, HTTP 408/429/5xx, network errors, timeouts,
// configuration errors) the caller should try again: with backoff, or, for a configuration
// error (IsConfigError), after a fixed wait.
type SendError struct {
	// Permanent reports that retrying cannot help.
	Permanent bool
	// Code is the SMTP reply code or HTTP status code, 0 if there was none.
	Code int
	// Bounce is the class of an SMTP rejection (BounceMailbox, ...); "" for other failures.
	// Only BounceMailbox means the recipient's address is bad.
	Bounce string
	// Enhanced is the reply's RFC 3463 enhanced status code, e.g. "5.1.1"; "" if it had none.
	Enhanced string
	// Err is the underlying error; an *SMTPConfigError for BounceConfig.
	Err error
}

// Error describes the failure, its class and code.
func (e *SendError) Error() string {
	class := "temporary"
	switch {
	case e.Permanent:
		class = "permanent"
	case e.Bounce == BounceConfig:
		class = "configuration"
	}
	if e.Code != 0 {
		return fmt.Sprintf("%s failure (code %d): %v", class, e.Code, e.Err)
	}
	return fmt.Sprintf("%s failure: %v", class, e.Err)
}

// Unwrap returns the underlying error.
func (e *SendError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is, or wraps, a permanent *SendError. Errors of other types,
// including context cancellation, are not permanent.
func IsPermanent(err error) bool {
	var se *SendError
	return errors.As(err, &se) && se.Permanent
}

// IsConfigError reports whether err is, or wraps, a *SendError for a configuration error
// (BounceConfig).
func IsConfigError(err error) bool {
	var se *SendError
	return errors.As(err, &se) && se.Bounce == BounceConfig
}

func permanent(code int, err error) *SendError {
	return &SendError{Permanent: true, Code: code, Err: err}
}

func temporary(code int, err error) *SendError {
	return &SendError{Code: code, Err: err}
}

func invalid(format string, args ...any) *SendError {
	return permanent(0, fmt.Errorf("%w: %s", ErrInvalidMessage, fmt.Sprintf(format, args...)))
}

// excerpt returns at most ResponseExcerptMax bytes of b as valid UTF-8 (invalid bytes, such
// as a rune cut in half by the limit, are dropped).
func excerpt(b []byte) string {
	if len(b) > ResponseExcerptMax {
		b = b[:ResponseExcerptMax]
	}
	return strings.ToValidUTF8(string(b), "")
}

// InFlighter is a Channel that sends at most MaxInFlight messages at once
// (the SMTP channel: its connection pool's size).
type InFlighter interface {
	MaxInFlight() int
}
