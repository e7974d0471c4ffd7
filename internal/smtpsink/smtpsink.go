// Package smtpsink runs a real, in-process SMTP server (github.com/emersion/go-smtp) on
// 127.0.0.1. It records every message it accepts, counts connections and DATA attempts,
// and can be scripted to reject the next messages with a given reply code.
//
// Tests use it through internal/smtptest; `ciclo bench` (internal/bench) uses it directly as
// the local SMTP server its email figures are measured against, which is why it does not
// import testing: the ciclo binary links it.
package smtpsink

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configures a Server started with StartWithOptions. The zero value is what Start uses.
type Options struct {
	// Username and Password, when Username is set, make the server offer AUTH PLAIN and
	// reject MAIL FROM from unauthenticated sessions. Default: no authentication.
	Username, Password string
	// DataDelay holds back the reply to each message's DATA, like a slow
	// server, so tests can act while a send is in flight. Default: none.
	DataDelay time.Duration
	// OnData, optional, is called when a message's data has been read,
	// before the delay and the reply.
	OnData func()
	// OnMessage, optional, is called with each accepted message's envelope
	// recipients, as it is accepted (benchmarks time deliveries with it).
	OnMessage func(to []string)
	// Discard keeps no message (Messages stays empty) and skips parsing:
	// only counts, for benchmarks sending many. Default: keep every message.
	Discard bool
}

// Server is a running SMTP test server. Its fields are fixed once Start returns.
type Server struct {
	// Addr is the host:port the server listens on, always on 127.0.0.1.
	Addr string
	// URL is an SMTP URL for the server as understood by channels.NewSMTP:
	// smtp://127.0.0.1:port?tls=none (with user:pass@ when Options.Username is set).
	URL string

	opts Options

	srv    *smtp.Server
	ln     net.Listener
	served chan struct{}

	mu          sync.Mutex
	accepted    int // messages accepted, kept or not
	msgs        []Received
	tries       []Received    // every DATA transfer, rejected ones too
	changed     chan struct{} // closed and replaced whenever msgs grows
	attempts    int
	connections int
	failCode    int
	failEnh     smtp.EnhancedCode
	failMsg     string
	failTimes   int // remaining scripted failures; -1 means forever
	rcptCode    int
	rcptEnh     smtp.EnhancedCode
	rcptMsg     string
	rcptTimes   int // remaining scripted RCPT TO rejections; -1 means forever
}

// Received is one message the server accepted.
type Received struct {
	// From is the envelope sender (MAIL FROM).
	From string
	// To are the envelope recipients (RCPT TO).
	To []string
	// Data is the raw message as received, after dot-unstuffing.
	Data []byte
	// Header is the parsed message header.
	Header mail.Header
	// Text and HTML are the decoded text/plain and text/html bodies, found in a single-part
	// body or anywhere in a (nested) multipart body.
	Text, HTML string
	// ContentType is the media type of the top-level body, e.g. "multipart/alternative".
	ContentType string
	// ParseErr is set when Data could not be parsed as a MIME message; Header, Text and HTML
	// then hold what was parsed before the error.
	ParseErr error
}

// Listen starts a server on 127.0.0.1:0 configured by opts; the caller closes it.
func Listen(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smtpsink: listen: %w", err)
	}

	s := &Server{Addr: ln.Addr().String(), opts: opts, changed: make(chan struct{}), ln: ln, served: make(chan struct{})}
	userinfo := ""
	if opts.Username != "" {
		userinfo = fmt.Sprintf("%s:%s@", opts.Username, opts.Password)
	}
	s.URL = fmt.Sprintf("smtp://%s%s?tls=none", userinfo, s.Addr)

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "smtpsink.local"
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 100
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	// Connection errors after a client hangs up are normal in tests; t.Log would panic if
	// called after the test finished, so they are discarded.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv = srv

	go func() {
		defer close(s.served)
		_ = srv.Serve(ln)
	}()
	return s, nil
}

// Close stops the server and waits for it to stop serving.
func (s *Server) Close() error {
	err := s.srv.Close()
	// Close misses the listener if Serve has not registered it yet; closing it here too
	// makes Serve return in every case.
	_ = s.ln.Close()
	<-s.served
	return err
}

// Count returns the number of messages accepted so far (kept or discarded).
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// WaitCount waits until at least n messages have been accepted (kept or
// discarded), or ctx ends. It wakes on each arrival; it does not poll.
func (s *Server) WaitCount(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, changed := s.accepted, s.changed
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("smtpsink: %d of %d messages arrived: %w", got, n, ctx.Err())
		}
	}
}

// Messages returns a copy of the messages received so far, in arrival order.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// FailNext makes the server answer the end of DATA of the next times messages with code and
// msg instead of accepting them (e.g. 451 twice, then normal). times = -1 fails every message
// until FailNext is called again; times = 0 cancels the script.
func (s *Server) FailNext(code int, msg string, times int) {
	s.FailNextEnhanced(code, smtp.EnhancedCodeNotSet, msg, times)
}

// FailNextEnhanced is FailNext with an RFC 3463 enhanced status code, e.g.
// smtp.EnhancedCode{5, 1, 1}; smtp.NoEnhancedCode sends none at all, and
// smtp.EnhancedCodeNotSet lets go-smtp send a generic one (5.0.0).
func (s *Server) FailNextEnhanced(code int, enh smtp.EnhancedCode, msg string, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCode, s.failEnh, s.failMsg, s.failTimes = code, enh, msg, times
}

// RejectRcpt makes the server reject the recipient (RCPT TO) of the next
// times messages with code and msg, as a server does for an unknown user
// (550). times = -1 rejects until RejectRcpt is called again; 0 cancels.
func (s *Server) RejectRcpt(code int, msg string, times int) {
	s.RejectRcptEnhanced(code, smtp.EnhancedCodeNotSet, msg, times)
}

// RejectRcptEnhanced is RejectRcpt with an RFC 3463 enhanced status code
// (see FailNextEnhanced).
func (s *Server) RejectRcptEnhanced(code int, enh smtp.EnhancedCode, msg string, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptCode, s.rcptEnh, s.rcptMsg, s.rcptTimes = code, enh, msg, times
}

// Tries returns every message whose data the server read, in order,
// including those it then rejected (FailNext): what each attempt sent.
func (s *Server) Tries() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.tries...)
}

// Attempts returns the number of DATA transfers the server has seen, including failed ones.
func (s *Server) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// Connections returns the number of SMTP connections (sessions) clients have opened.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

func (s *Server) newSession(*smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.connections++
	s.mu.Unlock()
	return &session{srv: s}, nil
}

// scriptedFailure returns the scripted error for the current DATA attempt, if any, and counts
// the attempt.
func (s *Server) scriptedFailure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if s.failTimes == 0 {
		return nil
	}
	if s.failTimes > 0 {
		s.failTimes--
	}
	return &smtp.SMTPError{Code: s.failCode, EnhancedCode: s.failEnh, Message: s.failMsg}
}

func (s *Server) add(r Received) {
	if s.opts.OnMessage != nil {
		s.opts.OnMessage(r.To)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepted++
	if !s.opts.Discard {
		s.msgs = append(s.msgs, r)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// session is one SMTP connection's state.
type session struct {
	srv    *Server
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.srv.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.srv.opts.Username == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != ss.srv.opts.Username || password != ss.srv.opts.Password {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.srv.opts.Username != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := ss.srv
	s.mu.Lock()
	if s.rcptTimes != 0 {
		if s.rcptTimes > 0 {
			s.rcptTimes--
		}
		code, enh, msg := s.rcptCode, s.rcptEnh, s.rcptMsg
		s.mu.Unlock()
		return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
	}
	s.mu.Unlock()
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.srv.opts.OnData != nil {
		ss.srv.opts.OnData()
	}
	time.Sleep(ss.srv.opts.DataDelay)
	rcv := Received{From: ss.from, To: append([]string(nil), ss.to...), Data: data}
	if !ss.srv.opts.Discard {
		rcv.ParseErr = parse(&rcv)
		ss.srv.mu.Lock()
		ss.srv.tries = append(ss.srv.tries, rcv)
		ss.srv.mu.Unlock()
	}
	if err := ss.srv.scriptedFailure(); err != nil {
		return err
	}
	ss.srv.add(rcv)
	return nil
}

func (ss *session) Reset() {
	ss.from, ss.to = "", nil
}

func (ss *session) Logout() error { return nil }

// parse fills r's Header, ContentType, Text and HTML from r.Data.
func parse(r *Received) error {
	msg, err := mail.ReadMessage(bytes.NewReader(r.Data))
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	r.Header = msg.Header
	mediaType, params, err := mime.ParseMediaType(contentType(msg.Header.Get("Content-Type")))
	if err != nil {
		return fmt.Errorf("parse content type: %w", err)
	}
	r.ContentType = mediaType
	return parsePart(r, mediaType, params, msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
}

func parsePart(r *Received, mediaType string, params map[string]string, cte string, body io.Reader) error {
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read %s part: %w", mediaType, err)
			}
			pt, pp, err := mime.ParseMediaType(contentType(p.Header.Get("Content-Type")))
			if err != nil {
				return fmt.Errorf("parse part content type: %w", err)
			}
			if err := parsePart(r, pt, pp, p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}

	var dec io.Reader
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		dec = quotedprintable.NewReader(body)
	case "base64":
		dec = base64.NewDecoder(base64.StdEncoding, body) // ignores line breaks
	default:
		dec = body
	}
	b, err := io.ReadAll(dec)
	if err != nil {
		return fmt.Errorf("decode %s body: %w", mediaType, err)
	}
	switch mediaType {
	case "text/plain":
		r.Text = string(b)
	case "text/html":
		r.HTML = string(b)
	}
	return nil
}

func contentType(v string) string {
	if v == "" {
		return "text/plain"
	}
	return v
}
