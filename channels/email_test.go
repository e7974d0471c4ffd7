package channels_test

import (
	"bytes"
	"net"
	"net/mail"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/internal/smtptest"
)

// requireLinesWithin fails if a line of raw's header exceeds max characters.
func requireLinesWithin(t *testing.T, raw []byte, max int) {
	t.Helper()
	header, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for i, line := range strings.Split(string(header), "\r\n") {
		require.LessOrEqual(t, len(line), max, "header line %d: %.120q…", i+1, line)
	}
}

func TestEmailHeaders(t *testing.T) {
	t.Parallel()

	long := strings.Repeat("x", 20000)
	words := strings.Repeat("Bartholomew ", 1500) + "Jr."
	tests := []struct {
		name, toName, subject string
	}{
		{"LongNameWithoutSpaces", long, "Hello " + long},
		{"LongNameWithSpaces", words, words},
		{"LongNonASCII", strings.Repeat("Zoë–Ünal ", 2000), strings.Repeat("Grüße ", 3000)},
		{"QuotesAndSpecials", `Ada "the Countess" Lovelace, <admin>@ (x)`, `50% off =?utf-8?q?not_encoded?= "today"`},
		{"RunsOfSpaces", "Ada   Lovelace ", "  two  spaces  "},
		{"ControlLike", "Ada\tLovelace\x01", "tab\there"},
		{"Short", "Ada Lovelace", "A gift for your first order"},
	}
	srv := smtptest.Start(t)
	ch, err := channels.NewSMTP(&channels.SMTPConfig{URL: srv.URL})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, ch.Close()) })

	for i, tt := range tests {
		m := testEmail("dlv-h" + string(rune('a'+i)))
		m.ToName, m.Subject = tt.toName, tt.subject
		m.Headers["X-Long-Unbreakable"] = "<https://shop.example.com/u/" + strings.Repeat("t", 300) + ">, <mailto:u@example.com>"
		_, err := ch.Send(t.Context(), m)
		require.NoError(t, err, tt.name)
		msg := srv.WaitMessages(t, i+1, waitTimeout)[i]
		require.NoError(t, msg.ParseErr, tt.name)

		requireLinesWithin(t, msg.Data, channels.HeaderLineHard)
		// Only the unbreakable structured value may pass the soft limit.
		header, _, _ := bytes.Cut(msg.Data, []byte("\r\n\r\n"))
		for _, line := range strings.Split(string(header), "\r\n") {
			if !strings.Contains(line, "ttttt") {
				require.LessOrEqual(t, len(line), channels.HeaderLineSoft, "%s: %.100q", tt.name, line)
			}
		}

		to, err := msg.Header.AddressList("To")
		require.NoError(t, err, tt.name)
		require.Len(t, to, 1)
		require.Equal(t, tt.toName, to[0].Name, tt.name)
		require.Equal(t, "ada@example.com", to[0].Address)
		require.Equal(t, []string{"ada@example.com"}, msg.To, "RCPT TO")
		subject, err := new(mimeDecoder).DecodeHeader(msg.Header.Get("Subject"))
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.subject, subject, tt.name)
		require.Equal(t, m.Headers["X-Long-Unbreakable"], msg.Header.Get("X-Long-Unbreakable"))
		require.Empty(t, msg.Header.Get("Bcc"), "the envelope recipient is not written as a header")
		require.Len(t, msg.Header["To"], 1)
	}

	t.Run("EMLToo", func(t *testing.T) {
		t.Parallel()
		m := testEmail("dlv-eml")
		m.ToName, m.Subject = long, long
		var buf bytes.Buffer
		require.NoError(t, channels.WriteEML(&buf, m))
		requireLinesWithin(t, buf.Bytes(), channels.HeaderLineSoft)
		parsed, err := mail.ReadMessage(&buf)
		require.NoError(t, err)
		to, err := parsed.Header.AddressList("To")
		require.NoError(t, err)
		require.Equal(t, long, to[0].Name)
	})

	t.Run("StructuredValueTooLongIsInvalid", func(t *testing.T) {
		t.Parallel()
		m := testEmail("dlv-toolong")
		m.Headers["List-Unsubscribe"] = "<https://shop.example.com/u/" + strings.Repeat("t", 1000) + ">"
		err := channels.WriteEML(&bytes.Buffer{}, m)
		require.ErrorIs(t, err, channels.ErrInvalidMessage)
		require.ErrorContains(t, err, "cannot be folded")
	})
}

func TestMessageID(t *testing.T) {
	t.Parallel()
	tests := []struct{ from, want string }{
		{"Shop <news@Shop.Example>", "<k1@shop.example>"},
		{"ciclo <ciclo@localhost>", "<k1@localhost>"},
		{"news@[192.0.2.1]", "<k1@ciclo>"},
		{"not an address", "<k1@ciclo>"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, channels.MessageID("k1", tt.from), tt.from)
	}
}

func TestSMTPBounceClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		script   func(s *smtptest.Server)
		wantCode int
		wantEnh  string
		want     string
		wantPerm bool
	}{
		{"RcptBadMailbox", func(s *smtptest.Server) {
			s.RejectRcptEnhanced(550, gosmtp.EnhancedCode{5, 1, 1}, "No such user", 1)
		}, 550, "5.1.1", channels.BounceMailbox, true},
		{"DataBadMailbox", func(s *smtptest.Server) {
			s.FailNextEnhanced(550, gosmtp.EnhancedCode{5, 1, 1}, "Mailbox unknown", 1)
		}, 550, "5.1.1", channels.BounceMailbox, true},
		{"DataBadDomain", func(s *smtptest.Server) {
			s.FailNextEnhanced(550, gosmtp.EnhancedCode{5, 1, 2}, "No such domain", 1)
		}, 550, "5.1.2", channels.BounceMailbox, true},
		{"RcptPolicy", func(s *smtptest.Server) {
			s.RejectRcptEnhanced(550, gosmtp.EnhancedCode{5, 7, 1}, "Relaying denied", 1)
		}, 550, "5.7.1", channels.BouncePolicy, true},
		{"DataPolicy", func(s *smtptest.Server) {
			s.FailNextEnhanced(554, gosmtp.EnhancedCode{5, 7, 1}, "Message looks like spam", 1)
		}, 554, "5.7.1", channels.BouncePolicy, true},
		{"RcptPlain5xx", func(s *smtptest.Server) {
			s.RejectRcptEnhanced(550, gosmtp.NoEnhancedCode, "No such user 5.1.1", 1)
		}, 550, "", channels.BouncePermanent, true},
		{"DataOther5xx", func(s *smtptest.Server) {
			s.FailNextEnhanced(552, gosmtp.EnhancedCode{5, 3, 4}, "Message too big", 1)
		}, 552, "5.3.4", channels.BouncePermanent, true},
		{"DataBadSender", func(s *smtptest.Server) {
			s.FailNextEnhanced(550, gosmtp.EnhancedCode{5, 1, 8}, "Bad sender domain", 1)
		}, 550, "5.1.8", channels.BounceConfig, false},
		{"RcptTransient", func(s *smtptest.Server) {
			s.RejectRcptEnhanced(450, gosmtp.EnhancedCode{4, 2, 1}, "Mailbox busy", 1)
		}, 450, "4.2.1", channels.BounceTransient, false},
		{"DataTransient", func(s *smtptest.Server) {
			s.FailNextEnhanced(451, gosmtp.EnhancedCode{4, 7, 1}, "Greylisted", 1)
		}, 451, "4.7.1", channels.BounceTransient, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.Start(t)
			ch, err := channels.NewSMTP(&channels.SMTPConfig{URL: srv.URL})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, ch.Close()) })
			tt.script(srv)
			_, err = ch.Send(t.Context(), testEmail("dlv-b"))
			var se *channels.SendError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tt.wantCode, se.Code)
			require.Equal(t, tt.wantEnh, se.Enhanced, "%v", err)
			require.Equal(t, tt.want, se.Bounce, "%v", err)
			require.Equal(t, tt.wantPerm, se.Permanent)
		})
	}

	t.Run("SenderRefusedIsConfig", func(t *testing.T) {
		t.Parallel()
		// The server wants AUTH; the URL names no user: MAIL FROM is refused.
		srv := smtptest.StartWithOptions(t, smtptest.Options{Username: "ciclo", Password: "s3cret"})
		ch, err := channels.NewSMTP(&channels.SMTPConfig{URL: "smtp://" + srv.Addr + "?tls=none"})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, ch.Close()) })
		_, err = ch.Send(t.Context(), testEmail("dlv-s"))
		require.True(t, channels.IsConfigError(err), "%v", err)
		require.False(t, channels.IsPermanent(err))
		require.ErrorContains(t, err, "refused the sender")
	})
}

func TestSMTPProbe(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t)
	authed := smtptest.StartWithOptions(t, smtptest.Options{Username: "ciclo", Password: "s3cret"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())

	tests := []struct {
		name, url, from string
		want            string // "" for no error
	}{
		{"OK", srv.URL, "Shop <shop@example.com>", ""},
		{"OKWithAuth", authed.URL, "shop@example.com", ""},
		{"NoStartTLS", "smtp://" + srv.Addr, "shop@example.com",
			"SMTP server " + srv.Addr + " does not offer STARTTLS, which smtp:// requires unless the URL says otherwise; set ?tls=none in CICLO_SMTP_URL for a local relay without TLS"},
		{"ImplicitTLSToPlainServer", "smtps://" + srv.Addr, "shop@example.com",
			"SMTP server " + srv.Addr + " did not answer the TLS handshake: it does not speak TLS on this port; use smtp:// (STARTTLS) for this port, or ?tls=none"},
		{"WrongPassword", "smtp://ciclo:wrong@" + authed.Addr + "?tls=none", "shop@example.com",
			"SMTP server " + authed.Addr + " rejected the user name and password; check the user and password in CICLO_SMTP_URL"},
		{"AuthMissing", "smtp://" + authed.Addr + "?tls=none", "shop@example.com",
			"SMTP server " + authed.Addr + " refused the sender shop@example.com"},
		{"ConnectionRefused", "smtp://" + closed + "?tls=none", "",
			"SMTP server " + closed + " refused the connection; check the host and port in CICLO_SMTP_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch, err := channels.NewSMTP(&channels.SMTPConfig{URL: tt.url})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, ch.Close()) })
			err = ch.Probe(t.Context(), tt.from)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			var ce *channels.SMTPConfigError
			require.ErrorAs(t, err, &ce)
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "wrong", "never the password")
			require.NotContains(t, ce.Public(), closed)
		})
	}
	require.Empty(t, srv.Messages(), "a probe sends nothing")
}
