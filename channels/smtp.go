package channels

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
)

const (
	// SMTPTimeoutDefault bounds dialing and each SMTP command exchange.
	SMTPTimeoutDefault = 10 * time.Second
	// SMTPPoolSizeDefault is the number of SMTP connections kept open and reused.
	SMTPPoolSizeDefault = 2
	// SMTPIdleTimeoutDefault is how long a pooled connection may sit unused before it is
	// closed and redialed rather than reused (servers drop idle sessions after a few minutes).
	SMTPIdleTimeoutDefault = 60 * time.Second

	// smtpProbeAfter is the idle time after which a pooled connection is checked with NOOP
	// before use. Busy connections skip the round trip.
	smtpProbeAfter = 2 * time.Second
)

// SMTPConfig configures an SMTP channel.
type SMTPConfig struct {
	// URL locates the server: smtp://user:pass@host:port?tls=none|starttls|tls&insecure_skip_verify=1.
	// tls defaults to starttls (mandatory) for smtp:// and to tls (implicit TLS) for smtps://.
	// The port defaults to 25 with tls=none, 587 with starttls and 465 with tls. User and
	// password, if present, are used for SMTP AUTH with the best mechanism the server offers;
	// go-mail refuses plain-text auth over an unencrypted connection except to localhost.
	// Required.
	URL string
	// Timeout bounds dialing and each SMTP command exchange. Default SMTPTimeoutDefault.
	Timeout time.Duration
	// PoolSize is the number of connections kept open and reused; at most that many messages
	// are sent at once. Default SMTPPoolSizeDefault.
	PoolSize int
	// IdleTimeout is how long a connection may sit unused before it is redialed instead of
	// reused. Default SMTPIdleTimeoutDefault.
	IdleTimeout time.Duration
	// HeloName is the name sent in EHLO/HELO. Default: the host name.
	HeloName string
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// SMTP is an email Channel that sends through an SMTP server over a small pool of connections
// that stay open across sends (and so across dispatch jobs). The most recently used idle
// connection is taken first, so light traffic runs over one connection. A connection is
// dialed on first use, probed with NOOP after sitting idle, redialed after IdleTimeout, and dropped after any
// error so the next send redials.
type SMTP struct {
	cfg         SMTPConfig
	client      *gomail.Client // dial and send settings only; its own connection is never used
	addr        string         // host:port, for error messages
	mode        string         // none, starttls or tls
	auth        bool           // the URL names a user
	implicitTLS bool
	tlsConfig   *tls.Config
	sem         chan struct{} // PoolSize tokens; holding one is the right to use a connection

	mu   sync.Mutex
	idle []*smtpConn   // connections not in use, most recently used last
	done chan struct{} // closed by Close

	closeOnce sync.Once
}

// smtpConn is one pool slot. c is nil until dialed and after an error; raw is its network
// connection, closed to abort an exchange when the sender's context ends.
type smtpConn struct {
	c        *gosmtp.Client
	raw      net.Conn
	lastUsed time.Time
}

// slotKey carries the *smtpConn being dialed to SMTP.dial through the dial context.
type slotKey struct{}

// NewSMTP validates cfg and returns an SMTP channel. It does not dial until the first Send.
// It errors on a malformed URL, an unknown query parameter or a negative setting.
func NewSMTP(cfg *SMTPConfig) (*SMTP, error) {
	c := *cfg
	if c.Timeout == 0 {
		c.Timeout = SMTPTimeoutDefault
	}
	if c.PoolSize == 0 {
		c.PoolSize = SMTPPoolSizeDefault
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = SMTPIdleTimeoutDefault
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Timeout < 0 || c.PoolSize < 0 || c.IdleTimeout < 0 {
		return nil, errors.New("smtp config: timeout, pool size and idle timeout must not be negative")
	}

	opts, err := smtpOptions(c.URL)
	if err != nil {
		return nil, err
	}
	s := &SMTP{
		cfg:         c,
		addr:        net.JoinHostPort(opts.host, strconv.Itoa(opts.port)),
		mode:        opts.mode,
		auth:        opts.auth,
		implicitTLS: opts.implicitTLS,
		tlsConfig:   opts.tlsConfig,
		sem:         make(chan struct{}, c.PoolSize),
		done:        make(chan struct{}),
	}
	opts.list = append(opts.list,
		gomail.WithDialContextFunc(s.dial),
		gomail.WithTimeout(c.Timeout),
		// ciclo probes idle connections itself and needs no RSET after a completed DATA.
		gomail.WithoutNoop(),
		gomail.WithoutRset(),
	)
	if c.HeloName != "" {
		opts.list = append(opts.list, gomail.WithHELO(c.HeloName))
	}
	s.client, err = gomail.NewClient(opts.host, opts.list...)
	if err != nil {
		return nil, fmt.Errorf("smtp config: %w", err)
	}
	return s, nil
}

type smtpOpts struct {
	host        string
	port        int
	mode        string
	auth        bool
	implicitTLS bool
	tlsConfig   *tls.Config
	list        []gomail.Option
}

// smtpOptions parses an SMTP URL into go-mail options. Errors never include the password.
func smtpOptions(raw string) (smtpOpts, error) {
	var o smtpOpts
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the input, password included.
		return o, errors.New("smtp config: malformed URL")
	}
	fail := func(format string, args ...any) (smtpOpts, error) {
		return o, fmt.Errorf("smtp config %q: %s", u.Redacted(), fmt.Sprintf(format, args...))
	}

	mode := ""
	switch u.Scheme {
	case "smtp":
		mode = "starttls"
	case "smtps":
		mode = "tls"
	default:
		return fail("scheme must be smtp or smtps")
	}
	o.host = u.Hostname()
	if o.host == "" {
		return fail("no host")
	}

	insecure := false
	for key, vals := range u.Query() {
		val := vals[len(vals)-1]
		switch key {
		case "tls":
			if val != "none" && val != "starttls" && val != "tls" {
				return fail("tls must be none, starttls or tls")
			}
			if u.Scheme == "smtps" && val != "tls" {
				return fail("smtps implies tls=tls")
			}
			mode = val
		case "insecure_skip_verify":
			insecure, err = strconv.ParseBool(val)
			if err != nil {
				return fail("insecure_skip_verify must be a boolean")
			}
		default:
			return fail("unknown parameter %q", key)
		}
	}

	port := map[string]int{"none": 25, "starttls": 587, "tls": 465}[mode]
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return fail("bad port")
		}
	}
	o.list = append(o.list, gomail.WithPort(port))
	o.port, o.mode = port, mode

	o.tlsConfig = &tls.Config{
		ServerName:         o.host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: insecure, //nolint:gosec // only when explicitly requested in the URL
	}
	o.list = append(o.list, gomail.WithTLSConfig(o.tlsConfig))
	auth := gomail.SMTPAuthAutoDiscover
	switch mode {
	case "none":
		o.list = append(o.list, gomail.WithTLSPolicy(gomail.NoTLS))
		// Auto-discovery never picks PLAIN without TLS; go-mail's PLAIN itself still refuses
		// to send credentials unencrypted to anything but localhost.
		auth = gomail.SMTPAuthPlain
	case "starttls":
		o.list = append(o.list, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case "tls":
		// The channel's dialer does the TLS handshake itself (go-mail's WithSSL only works
		// with its own dialer). Opportunistic policy makes go-mail see the connection as
		// encrypted without attempting STARTTLS, which TLS servers do not offer.
		o.implicitTLS = true
		o.list = append(o.list, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}

	if u.User != nil && u.User.Username() != "" {
		o.auth = true
		pass, _ := u.User.Password()
		o.list = append(o.list,
			gomail.WithSMTPAuth(auth),
			gomail.WithUsername(u.User.Username()),
			gomail.WithPassword(pass),
		)
	}
	return o, nil
}

// MaxInFlight is how many messages Send hands to the server at once: PoolSize.
func (s *SMTP) MaxInFlight() int { return s.cfg.PoolSize }

// Name returns "email".
func (s *SMTP) Name() string { return EmailName }

// Send delivers m over a pooled connection, dialing one if needed. It waits for a free
// connection until ctx ends. Invalid messages and SMTP 5xx replies are permanent *SendErrors
// (classified in SendError.Bounce); 4xx replies, connection failures and timeouts are
// temporary; a missing STARTTLS, a failed TLS handshake, refused credentials and a refused
// sender are configuration errors (IsConfigError). After any error the connection is
// dropped and the next Send redials.
func (s *SMTP) Send(ctx context.Context, m *Message) (Result, error) {
	e, err := buildEmail(m)
	if err != nil {
		return Result{}, err
	}
	msg := e.msg

	select {
	case <-s.done:
		return Result{}, permanent(0, ErrClosed)
	default:
	}
	select {
	case s.sem <- struct{}{}:
	case <-s.done:
		return Result{}, permanent(0, ErrClosed)
	case <-ctx.Done():
		return Result{}, temporary(0, fmt.Errorf("wait for smtp connection: %w", ctx.Err()))
	}
	sc := s.get()
	defer func() {
		s.put(sc)
		<-s.sem
	}()

	if err := s.ready(ctx, sc); err != nil {
		return Result{}, err
	}

	// An ending ctx closes the network connection to abort a blocked exchange (closing the
	// go-mail client would wait for its lock, held during the exchange).
	raw := sc.raw
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	err = s.client.SendWithSMTPClient(sc.c, msg)
	if !stop() {
		// ctx ended during the exchange and closed the connection. If the
		// server had already accepted the message, that is what counts:
		// reporting a failure would send it again.
		s.drop(sc)
		if err == nil {
			return Result{ProviderID: e.messageID, StatusCode: 250, Response: excerpt([]byte(msg.ServerResponse()))}, nil
		}
		return Result{}, temporary(0, fmt.Errorf("smtp send: %w", ctx.Err()))
	}
	if err != nil {
		s.drop(sc)
		return Result{}, s.classify(err)
	}
	sc.lastUsed = s.cfg.Now()
	return Result{
		ProviderID: e.messageID,
		StatusCode: 250,
		Response:   excerpt([]byte(msg.ServerResponse())),
	}, nil
}

// get takes the most recently used idle connection, so light traffic keeps using one
// connection and the others age out; or an empty slot to dial.
func (s *SMTP) get() *smtpConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.idle); n > 0 {
		sc := s.idle[n-1]
		s.idle = s.idle[:n-1]
		return sc
	}
	return &smtpConn{}
}

// put returns sc to the idle list, or forgets it if it holds no connection.
func (s *SMTP) put(sc *smtpConn) {
	if sc.c == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idle = append(s.idle, sc)
}

// ready makes sure sc holds a usable connection, reusing, probing or dialing as needed.
func (s *SMTP) ready(ctx context.Context, sc *smtpConn) error {
	if sc.c != nil {
		idle := s.cfg.Now().Sub(sc.lastUsed)
		switch {
		case idle >= s.cfg.IdleTimeout:
			s.quit(sc)
		case idle >= smtpProbeAfter:
			if err := sc.c.UpdateDeadline(s.cfg.Timeout); err != nil || sc.c.Noop() != nil {
				s.drop(sc)
			}
		}
	}
	if sc.c != nil {
		return nil
	}
	c, err := s.client.DialToSMTPClientWithContext(context.WithValue(ctx, slotKey{}, sc))
	if err != nil {
		if sc.raw != nil {
			_ = sc.raw.Close()
			sc.raw = nil
		}
		if ctx.Err() != nil {
			return temporary(0, fmt.Errorf("smtp dial: %w", ctx.Err()))
		}
		// Dial, TLS and AUTH failures are the server's or the configuration's problem, not
		// the message's: never permanent, so deliveries are not lost. A configuration
		// error (no STARTTLS, a failed TLS handshake, rejected credentials) is marked as
		// such, so the caller waits for the fix instead of backing off for hours.
		if ce := s.configProblem(err, false); ce != nil {
			return configErr(smtpCode(err), ce)
		}
		return temporary(smtpCode(err), fmt.Errorf("smtp dial: %w", err))
	}
	sc.c = c
	sc.lastUsed = s.cfg.Now()
	return nil
}

// dial opens the network connection for the slot in ctx (doing the TLS handshake for
// implicit TLS) and records it in the slot.
func (s *SMTP) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{}
	var conn net.Conn
	var err error
	if s.implicitTLS {
		conn, err = (&tls.Dialer{NetDialer: d, Config: s.tlsConfig}).DialContext(ctx, network, addr)
	} else {
		conn, err = d.DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	if sc, ok := ctx.Value(slotKey{}).(*smtpConn); ok {
		sc.raw = conn
	}
	return conn, nil
}

// drop closes sc's connection without the QUIT exchange (it may be broken).
func (s *SMTP) drop(sc *smtpConn) {
	if sc.raw != nil {
		_ = sc.raw.Close()
	}
	sc.c, sc.raw = nil, nil
}

// quit ends sc's connection politely, bounded by the timeout.
func (s *SMTP) quit(sc *smtpConn) {
	if sc.c != nil {
		if sc.c.UpdateDeadline(s.cfg.Timeout) == nil {
			_ = sc.c.Quit()
		}
		s.drop(sc)
	}
}

// Close waits for sends in progress, then quits every pooled connection. Later Sends fail
// with ErrClosed. Close is idempotent.
func (s *SMTP) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		for range s.cfg.PoolSize {
			s.sem <- struct{}{} // wait for sends in progress
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, sc := range s.idle {
			s.quit(sc)
		}
		s.idle = nil
	})
	return nil
}

// classify turns a go-mail send error into a *SendError. 5xx replies are permanent and
// classified by their RFC 3463 enhanced status code (see SendError.Bounce); 4xx replies,
// network errors and timeouts are temporary; a 5xx to MAIL FROM (and a 5.1.7 or 5.1.8, a bad
// sender) is a configuration error: it concerns CICLO_FROM or the credentials, not the message.
func (s *SMTP) classify(err error) *SendError {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return temporary(smtpCode(err), fmt.Errorf("smtp send: %w", err))
	}
	code := se.ErrorCode()
	if code == 0 {
		code = smtpCode(err)
	}
	enh := enhancedStatus(err.Error(), code)
	wrapped := fmt.Errorf("smtp send: %w", err)
	atRecipient := se.Reason == gomail.ErrSMTPRcptTo || se.Reason == gomail.ErrSMTPDataClose
	switch {
	case code >= 500 && (se.Reason == gomail.ErrSMTPMailFrom || enh == "5.1.7" || enh == "5.1.8"):
		ce := &SMTPConfigError{Addr: s.addr, Problem: "refused the sender: " + replyText(err),
			Fix: "check CICLO_FROM and the user and password in CICLO_SMTP_URL"}
		e := configErr(code, ce)
		e.Enhanced = enh
		return e
	case code >= 500:
		pe := permanent(code, wrapped)
		pe.Enhanced, pe.Bounce = enh, BouncePermanent
		switch {
		case strings.HasPrefix(enh, "5.1.") && atRecipient:
			pe.Bounce = BounceMailbox
		case strings.HasPrefix(enh, "5.7."):
			pe.Bounce = BouncePolicy
		}
		return pe
	case code >= 400:
		te := temporary(code, wrapped)
		te.Enhanced, te.Bounce = enh, BounceTransient
		return te
	case se.Reason == gomail.ErrGetSender, se.Reason == gomail.ErrGetRcpts, se.Reason == gomail.ErrNoUnencoded:
		return permanent(code, wrapped)
	default:
		return temporary(code, wrapped)
	}
}

// enhancedStatus finds the RFC 3463 enhanced status code that starts the text of the reply
// with this code in msg ("550 5.1.1 No such user" gives "5.1.1"); "" if there is none or its
// class does not match the reply code's.
func enhancedStatus(msg string, code int) string {
	if code < 200 || code > 599 {
		return ""
	}
	i := strings.Index(msg, strconv.Itoa(code)+" ")
	if i < 0 {
		return ""
	}
	// Go's textproto.Error quotes the reply text.
	rest := strings.TrimPrefix(msg[i+4:], `"`)
	end := strings.IndexAny(rest, " ,\"")
	if end < 0 {
		end = len(rest)
	}
	cand := rest[:end]
	parts := strings.Split(cand, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return ""
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return ""
		}
	}
	return cand
}

// replyText is the server's reply in err, without go-mail's description of the command.
func replyText(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	if i := strings.Index(msg, ", affected"); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// smtpCode extracts an SMTP reply code from err, or 0.
func smtpCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	// go-mail flattens some replies into strings that start with the code.
	msg := err.Error()
	if len(msg) >= 4 && (msg[0] == '4' || msg[0] == '5') && msg[3] == ' ' {
		if code, err := strconv.Atoi(msg[:3]); err == nil {
			return code
		}
	}
	return 0
}
