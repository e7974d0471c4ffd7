package channels

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"
	"syscall"

	gomail "github.com/wneessen/go-mail"
)

// SMTPConfigError says what is wrong with the SMTP configuration and how to fix it, e.g.
// "SMTP server 127.0.0.1:25 does not offer STARTTLS; set ?tls=none in CICLO_SMTP_URL for a
// local relay without TLS". It never holds the password.
type SMTPConfigError struct {
	// Addr is the server's host:port.
	Addr string
	// Problem is what is wrong, as a predicate of "SMTP server Addr".
	Problem string
	// Fix is how to fix it.
	Fix string
	// Err is the underlying error, if any.
	Err error
}

// Error says what is wrong and how to fix it.
func (e *SMTPConfigError) Error() string {
	msg := fmt.Sprintf("SMTP server %s %s; %s", e.Addr, e.Problem, e.Fix)
	if e.Err != nil {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

// Public is Error without the server's address and the underlying error, for a public
// endpoint such as /readyz.
func (e *SMTPConfigError) Public() string {
	return fmt.Sprintf("SMTP server %s; %s", e.Problem, e.Fix)
}

// Unwrap returns the underlying error.
func (e *SMTPConfigError) Unwrap() error { return e.Err }

func configErr(code int, ce *SMTPConfigError) *SendError {
	return &SendError{Code: code, Bounce: BounceConfig, Err: ce}
}

// Probe checks the SMTP configuration on a connection of its own, outside the pool: it
// connects, says EHLO, negotiates TLS as configured, authenticates, and, when from is set,
// asks MAIL FROM for that sender and resets; it sends nothing. It returns nil when all of
// that works, else an *SMTPConfigError saying what is wrong and how to fix it (including
// an unreachable server: at start that is most likely a wrong host or port).
func (s *SMTP) Probe(ctx context.Context, from string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	c, err := s.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return s.configProblem(err, true)
	}
	defer func() { _ = c.Close() }()
	if from != "" {
		addr := from
		if a, perr := mail.ParseAddress(from); perr == nil {
			addr = a.Address
		}
		if err := c.Mail(addr); err != nil {
			return &SMTPConfigError{Addr: s.addr, Problem: fmt.Sprintf("refused the sender %s: %v", addr, err),
				Fix: "check CICLO_FROM and the user and password in CICLO_SMTP_URL", Err: err}
		}
		if err := c.Reset(); err != nil {
			return &SMTPConfigError{Addr: s.addr, Problem: "did not accept RSET", Fix: "check that it is an SMTP server", Err: err}
		}
	}
	_ = c.Quit()
	return nil
}

// configProblem reads a failure to connect as a configuration error: what is wrong and how
// to fix it; nil if it is not one. With reachability set, an unreachable server counts too
// (at start it most likely means a wrong host or port; later, an outage).
func (s *SMTP) configProblem(err error, reachability bool) *SMTPConfigError {
	ce := &SMTPConfigError{Addr: s.addr, Err: err}
	msg := err.Error()
	var (
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		verifyErr  *tls.CertificateVerificationError
		hostErr    x509.HostnameError
		unknownCA  x509.UnknownAuthorityError
		invalidErr x509.CertificateInvalidError
		dnsErr     *net.DNSError
	)
	code := smtpCode(err)
	switch {
	case strings.Contains(msg, "does not support STARTTLS"):
		ce.Problem = "does not offer STARTTLS, which smtp:// requires unless the URL says otherwise"
		ce.Fix = "set ?tls=none in CICLO_SMTP_URL for a local relay without TLS, or use smtps:// if it speaks implicit TLS"
		ce.Err = nil
	case errors.As(err, &recordErr):
		ce.Problem = "did not answer the TLS handshake: it does not speak TLS on this port"
		if s.mode == "tls" {
			ce.Fix = "use smtp:// (STARTTLS) for this port, or ?tls=none for a relay without TLS"
		} else {
			ce.Fix = "check tls= and the port in CICLO_SMTP_URL"
		}
	case errors.As(err, &verifyErr), errors.As(err, &hostErr), errors.As(err, &unknownCA), errors.As(err, &invalidErr):
		ce.Problem = "presented a TLS certificate that does not verify"
		ce.Fix = "name the host its certificate is for in CICLO_SMTP_URL, install its CA, or, for a test server only, set ?insecure_skip_verify=1"
	case errors.As(err, &alertErr), strings.Contains(msg, "tls: "):
		ce.Problem = "failed the TLS handshake"
		ce.Fix = "check tls= and the port in CICLO_SMTP_URL"
	case code == 535 || code == 534 || code == 538 || errors.Is(err, gomail.ErrPlainAuthNotSupported) ||
		strings.Contains(msg, "does not support SMTP AUTH") || strings.Contains(msg, "unencrypted connection"):
		switch {
		case !s.auth:
			ce.Problem = "requires authentication"
			ce.Fix = "put user:password@ in CICLO_SMTP_URL"
		case strings.Contains(msg, "does not support SMTP AUTH"), errors.Is(err, gomail.ErrPlainAuthNotSupported):
			ce.Problem = "does not offer a usable SMTP AUTH mechanism for the user in CICLO_SMTP_URL"
			ce.Fix = "remove user:password@ from CICLO_SMTP_URL for a relay that needs none, or use STARTTLS or TLS (servers offer AUTH only over TLS)"
		case strings.Contains(msg, "unencrypted connection"):
			ce.Problem = "would receive the password unencrypted"
			ce.Fix = "use STARTTLS (drop ?tls=none) or smtps:// in CICLO_SMTP_URL"
		default:
			ce.Problem = "rejected the user name and password"
			ce.Fix = "check the user and password in CICLO_SMTP_URL"
		}
	case !reachability:
		return nil
	case errors.Is(err, syscall.ECONNREFUSED):
		ce.Problem = "refused the connection"
		ce.Fix = "check the host and port in CICLO_SMTP_URL and that the server is running"
	case errors.As(err, &dnsErr):
		ce.Problem = "cannot be resolved"
		ce.Fix = "check the host in CICLO_SMTP_URL"
	default:
		ce.Problem = "could not be reached"
		ce.Fix = "check the host and port in CICLO_SMTP_URL and that the server is running"
	}
	return ce
}
