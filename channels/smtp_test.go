package channels_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
	gomail "github.com/wneessen/go-mail"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/internal/smtptest"
)

const waitTimeout = 5 * time.Second

func testEmail(id string) *channels.Message {
	return &channels.Message{
		ID:      id,
		From:    "Example Shop <shop@example.com>",
		To:      "ada@example.com",
		ToName:  "Ada Lovelace",
		Subject: "A gift for your first order",
		Text:    "Hi Ada,\n\nHere is 10% off.\n\nUnsubscribe: https://shop.example.com/u/1\n",
		HTML:    `<p>Hi Ada,</p><p>Here is <strong>10% off</strong>.</p><a href="https://shop.example.com/u/1">Unsubscribe</a>`,
		Headers: map[string]string{
			"List-Unsubscribe":      "<https://shop.example.com/u/1>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
	}
}

func TestSMTP(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		srv *smtptest.Server
	}
	setup := func(t *testing.T, cfg *channels.SMTPConfig) (*channels.SMTP, *testBundle) {
		t.Helper()
		srv := smtptest.Start(t)
		if cfg == nil {
			cfg = &channels.SMTPConfig{}
		}
		if cfg.URL == "" {
			cfg.URL = srv.URL
		}
		ch, err := channels.NewSMTP(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, ch.Close()) })
		return ch, &testBundle{srv: srv}
	}

	t.Run("SendsMultipartWithHeaders", func(t *testing.T) {
		t.Parallel()
		ch, bundle := setup(t, nil)
		require.Equal(t, "email", ch.Name())

		res, err := ch.Send(t.Context(), testEmail("dlv-1"))
		require.NoError(t, err)
		require.Equal(t, "<dlv-1@example.com>", res.ProviderID)
		require.Equal(t, 250, res.StatusCode)

		msg := bundle.srv.WaitMessages(t, 1, waitTimeout)[0]
		require.NoError(t, msg.ParseErr)
		require.Equal(t, "shop@example.com", msg.From)
		require.Equal(t, []string{"ada@example.com"}, msg.To)
		require.Equal(t, "<dlv-1@example.com>", msg.Header.Get("Message-ID"))
		require.Equal(t, "<https://shop.example.com/u/1>", msg.Header.Get("List-Unsubscribe"))
		require.Equal(t, "List-Unsubscribe=One-Click", msg.Header.Get("List-Unsubscribe-Post"))
		require.Equal(t, "A gift for your first order", msg.Header.Get("Subject"))
		require.Equal(t, `"Example Shop" <shop@example.com>`, msg.Header.Get("From"))
		require.Equal(t, `"Ada Lovelace" <ada@example.com>`, msg.Header.Get("To"))
		require.NotEmpty(t, msg.Header.Get("Date"))
		require.Equal(t, "multipart/alternative", msg.ContentType)
		require.Equal(t, testEmail("x").Text, strings.ReplaceAll(msg.Text, "\r\n", "\n"))
		require.Equal(t, testEmail("x").HTML, msg.HTML)
	})

	t.Run("NonASCIINameAndSubject", func(t *testing.T) {
		t.Parallel()
		ch, bundle := setup(t, nil)
		m := testEmail("dlv-utf8")
		m.ToName, m.Subject = `Zoë "Z" Ünal`, "Grüße – 10% für dich"
		_, err := ch.Send(t.Context(), m)
		require.NoError(t, err)
		msg := bundle.srv.WaitMessages(t, 1, waitTimeout)[0]
		to, err := msg.Header.AddressList("To")
		require.NoError(t, err)
		require.Equal(t, `Zoë "Z" Ünal`, to[0].Name)
		subject, err := new(mimeDecoder).DecodeHeader(msg.Header.Get("Subject"))
		require.NoError(t, err)
		require.Equal(t, m.Subject, subject)
	})

	t.Run("ReusesOneConnection", func(t *testing.T) {
		t.Parallel()
		ch, bundle := setup(t, nil)
		for i := range 20 {
			_, err := ch.Send(t.Context(), testEmail(fmt.Sprintf("dlv-%d", i)))
			require.NoError(t, err)
		}
		require.Len(t, bundle.srv.WaitMessages(t, 20, waitTimeout), 20)
		require.Equal(t, 1, bundle.srv.Connections())
	})

	t.Run("ConcurrentSendsStayWithinPool", func(t *testing.T) {
		t.Parallel()
		ch, bundle := setup(t, &channels.SMTPConfig{PoolSize: 3})
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			wg.Go(func() {
				_, err := ch.Send(t.Context(), testEmail(fmt.Sprintf("dlv-%d", i)))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Len(t, bundle.srv.WaitMessages(t, 40, waitTimeout), 40)
		require.LessOrEqual(t, bundle.srv.Connections(), 3)
	})

	t.Run("TemporaryFailureThenRedial", func(t *testing.T) {
		t.Parallel()
		ch, bundle := setup(t, nil)
		_, err := ch.Send(t.Context(), testEmail("dlv-0"))
		require.NoError(t, err)

		bundle.srv.FailNext(451, "Try again later", 1)
		_, err = ch.Send(t.Context(), testEmail("dlv-1"))
		require.Error(t, err)
		require.False(t, channels.IsPermanent(err))
		var se *channels.SendError
		require.ErrorAs(t, err, &se)
		require.Equal(t, 451, se.Code)
		require.ErrorContains(t, err, "Try again later")

		res, err := ch.Send(t.Context(), testEmail("dlv-1"))
		require.NoError(t, err)
		require.Equal(t, "<dlv-1@example.com>", res.ProviderID)
		require.Equal(t, 3, bundle.srv.Attempts())
		require.Equal(t, 2, bundle.srv.Connections(), "broken connection dropped and redialed")
		msgs := bundle.srv.WaitMessages(t, 2, waitTimeout)
		require.Equal(t, "<dlv-1@example.com>", msgs[1].Header.Get("Message-ID"), "same Message-ID on retry")
	})

	t.Run("PermanentFailure", func(t *testing.T) {
		t.Parallel()
		ch, bundle := setup(t, nil)
		bundle.srv.FailNext(550, "No such user", -1)
		for range 2 {
			_, err := ch.Send(t.Context(), testEmail("dlv-1"))
			require.True(t, channels.IsPermanent(err), "%v", err)
			var se *channels.SendError
			require.ErrorAs(t, err, &se)
			require.Equal(t, 550, se.Code)
			require.Equal(t, channels.BouncePermanent, se.Bounce, "a 5xx without 5.1.x says nothing about the address")
		}
		require.Equal(t, 2, bundle.srv.Attempts())
		require.Empty(t, bundle.srv.Messages())
	})

	t.Run("RecipientRefused", func(t *testing.T) {
		t.Parallel()
		ch, bundle := setup(t, nil)
		bundle.srv.RejectRcptEnhanced(550, gosmtp.EnhancedCode{5, 1, 1}, "No such user", 1)
		_, err := ch.Send(t.Context(), testEmail("dlv-1"))
		var se *channels.SendError
		require.ErrorAs(t, err, &se)
		require.True(t, se.Permanent)
		require.Equal(t, channels.BounceMailbox, se.Bounce, "%v", err)
		require.Equal(t, "5.1.1", se.Enhanced)
		require.Equal(t, 550, se.Code)
		require.Equal(t, 0, bundle.srv.Attempts())

		// The next message is accepted on a fresh connection.
		_, err = ch.Send(t.Context(), testEmail("dlv-2"))
		require.NoError(t, err)
	})

	t.Run("InvalidMessagesArePermanent", func(t *testing.T) {
		t.Parallel()
		ch, bundle := setup(t, nil)
		tests := []struct {
			name   string
			modify func(m *channels.Message)
		}{
			{"BadTo", func(m *channels.Message) { m.To = "not an address" }},
			{"NamedTo", func(m *channels.Message) { m.To = "Ada <ada@example.com>" }},
			{"BadFrom", func(m *channels.Message) { m.From = "shop@" }},
			{"UnfoldableFromName", func(m *channels.Message) { m.From = `"` + strings.Repeat("x", 100) + `" <shop@example.com>` }},
			{"EmptyID", func(m *channels.Message) { m.ID = "" }},
			{"IDWithAt", func(m *channels.Message) { m.ID = "a@b" }},
			{"NoBody", func(m *channels.Message) { m.Text, m.HTML = "", "" }},
			{"SubjectInjection", func(m *channels.Message) { m.Subject = "hi\r\nBcc: x@evil.test" }},
			{"HeaderInjection", func(m *channels.Message) { m.Headers["X-A"] = "1\nBcc: x@evil.test" }},
			{"ReservedHeader", func(m *channels.Message) { m.Headers["Bcc"] = "x@evil.test" }},
			{"BadHeaderName", func(m *channels.Message) { m.Headers["X A"] = "1" }},
		}
		for _, tt := range tests {
			m := testEmail("dlv-1")
			tt.modify(m)
			_, err := ch.Send(t.Context(), m)
			require.True(t, channels.IsPermanent(err), "%s: %v", tt.name, err)
			require.ErrorIs(t, err, channels.ErrInvalidMessage, tt.name)
		}
		require.Zero(t, bundle.srv.Connections(), "invalid messages never reach the server")
	})

	t.Run("ServerDownIsTemporary", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())

		ch, err := channels.NewSMTP(&channels.SMTPConfig{URL: "smtp://" + addr + "?tls=none", Timeout: time.Second})
		require.NoError(t, err)
		_, err = ch.Send(t.Context(), testEmail("dlv-1"))
		require.Error(t, err)
		require.False(t, channels.IsPermanent(err))
		require.NoError(t, ch.Close())
	})

	t.Run("StartTLSRequiredByDefault", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.Start(t)
		ch, err := channels.NewSMTP(&channels.SMTPConfig{URL: "smtp://" + srv.Addr})
		require.NoError(t, err)
		_, err = ch.Send(t.Context(), testEmail("dlv-1"))
		require.ErrorContains(t, err, "SMTP server "+srv.Addr+" does not offer STARTTLS")
		require.ErrorContains(t, err, "set ?tls=none in CICLO_SMTP_URL for a local relay without TLS")
		require.False(t, channels.IsPermanent(err))
		require.True(t, channels.IsConfigError(err), "a configuration error, not an outage to back off from")
		require.NoError(t, ch.Close())
	})

	t.Run("Auth", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.StartWithOptions(t, smtptest.Options{Username: "ciclo", Password: "s3cret"})
		ch, err := channels.NewSMTP(&channels.SMTPConfig{URL: srv.URL})
		require.NoError(t, err)
		_, err = ch.Send(t.Context(), testEmail("dlv-1"))
		require.NoError(t, err)
		require.NoError(t, ch.Close())

		bad, err := channels.NewSMTP(&channels.SMTPConfig{URL: "smtp://ciclo:wrong@" + srv.Addr + "?tls=none"})
		require.NoError(t, err)
		_, err = bad.Send(t.Context(), testEmail("dlv-2"))
		require.Error(t, err)
		require.False(t, channels.IsPermanent(err), "auth failures are the config's problem, not the message's")
		require.True(t, channels.IsConfigError(err), "%v", err)
		require.ErrorContains(t, err, "rejected the user name and password; check the user and password in CICLO_SMTP_URL")
		require.NotContains(t, err.Error(), "wrong", "the password is never shown")
		require.NoError(t, bad.Close())
		require.Len(t, srv.Messages(), 1)
	})

	t.Run("CancelledContext", func(t *testing.T) {
		t.Parallel()
		ch, bundle := setup(t, &channels.SMTPConfig{PoolSize: 1})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := ch.Send(ctx, testEmail("dlv-1"))
		require.ErrorIs(t, err, context.Canceled)
		require.False(t, channels.IsPermanent(err))
		_, err = ch.Send(t.Context(), testEmail("dlv-2"))
		require.NoError(t, err)
		require.Len(t, bundle.srv.WaitMessages(t, 1, waitTimeout), 1)
	})

	t.Run("SendAfterClose", func(t *testing.T) {
		t.Parallel()
		ch, _ := setup(t, nil)
		_, err := ch.Send(t.Context(), testEmail("dlv-1"))
		require.NoError(t, err)
		require.NoError(t, ch.Close())
		_, err = ch.Send(t.Context(), testEmail("dlv-2"))
		require.ErrorIs(t, err, channels.ErrClosed)
	})

	t.Run("IdleConnectionIsProbedAndRedialed", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
		ch, bundle := setup(t, &channels.SMTPConfig{PoolSize: 1, IdleTimeout: time.Minute, Now: clock})

		for _, step := range []time.Duration{0, 5 * time.Second, 2 * time.Minute} {
			advance(step)
			_, err := ch.Send(t.Context(), testEmail("dlv-1"))
			require.NoError(t, err)
		}
		require.Equal(t, 2, bundle.srv.Connections(), "probed after 5s and reused; redialed after 2m")
	})
}

func TestNewSMTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{"Plain", "smtp://mail.example.com?tls=none", ""},
		{"StartTLSWithAuth", "smtp://user:pa%24s@mail.example.com:587", ""},
		{"Implicit", "smtps://user:pass@mail.example.com", ""},
		{"Insecure", "smtp://mail.example.com?tls=tls&insecure_skip_verify=1", ""},
		{"BadScheme", "http://mail.example.com", "scheme"},
		{"NoHost", "smtp://", "no host"},
		{"BadTLS", "smtp://mail.example.com?tls=maybe", "tls must be"},
		{"SMTPSNotTLS", "smtps://mail.example.com?tls=none", "implies"},
		{"UnknownParam", "smtp://mail.example.com?tsl=none", `unknown parameter "tsl"`},
		{"BadPort", "smtp://mail.example.com:99999", "bad port"},
		{"BadBool", "smtp://mail.example.com?insecure_skip_verify=perhaps", "boolean"},
		{"PasswordNotLeaked", "smtp://user:hunter2@mail.example.com?x=1", "xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch, err := channels.NewSMTP(&channels.SMTPConfig{URL: tt.url})
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, ch.Close())
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
	_, err := channels.NewSMTP(&channels.SMTPConfig{URL: "smtp://mail.example.com", PoolSize: -1})
	require.Error(t, err)
}

func TestSendError(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	tests := []struct {
		name      string
		err       error
		permanent bool
		msg       string
	}{
		{"Permanent", &channels.SendError{Permanent: true, Code: 550, Err: base}, true, "permanent failure (code 550): boom"},
		{"Temporary", &channels.SendError{Code: 451, Err: base}, false, "temporary failure (code 451): boom"},
		{"NoCode", &channels.SendError{Err: base}, false, "temporary failure: boom"},
		{"Wrapped", fmt.Errorf("dispatch: %w", &channels.SendError{Permanent: true, Err: base}), true, "dispatch: permanent failure: boom"},
		{"Plain", base, false, "boom"},
		{"Nil", nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.permanent, channels.IsPermanent(tt.err))
			if tt.err != nil {
				require.Equal(t, tt.msg, tt.err.Error())
				if tt.name != "Plain" {
					require.ErrorIs(t, tt.err, base)
				}
			}
		})
	}
}

// BenchmarkSMTP compares ciclo's SMTP channel with go-mail used directly over one reused
// connection, sending the same ~3 KB multipart message to the smtptest server.
func BenchmarkSMTP(b *testing.B) {
	srv := smtptest.Start(b)
	body := strings.Repeat("Thank you for shopping with us. Here is a little something for next time. ", 20)
	m := testEmail("bench")
	m.Text = body
	m.HTML = "<p>" + body + "</p>"

	b.Run("ciclo", func(b *testing.B) {
		ch, err := channels.NewSMTP(&channels.SMTPConfig{URL: srv.URL, PoolSize: 1})
		require.NoError(b, err)
		defer ch.Close()
		ctx := context.Background()
		b.SetBytes(int64(len(m.Text) + len(m.HTML)))
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			mm := *m
			mm.ID = fmt.Sprintf("bench-%d", i)
			if _, err := ch.Send(ctx, &mm); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("raw_gomail", func(b *testing.B) {
		host, port, err := net.SplitHostPort(srv.Addr)
		require.NoError(b, err)
		var p int
		_, err = fmt.Sscan(port, &p)
		require.NoError(b, err)
		client, err := gomail.NewClient(host, gomail.WithPort(p), gomail.WithTLSPolicy(gomail.NoTLS))
		require.NoError(b, err)
		require.NoError(b, client.DialWithContext(context.Background()))
		defer client.Close()
		b.SetBytes(int64(len(m.Text) + len(m.HTML)))
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			msg := gomail.NewMsg()
			require.NoError(b, msg.FromFormat("Example Shop", "shop@example.com"))
			require.NoError(b, msg.AddToFormat(m.ToName, m.To))
			msg.Subject(m.Subject)
			msg.SetMessageIDWithValue(fmt.Sprintf("bench-%d@ciclo", i))
			msg.SetDate()
			for k, v := range m.Headers {
				msg.SetGenHeader(gomail.Header(k), v)
			}
			msg.SetBodyString(gomail.TypeTextPlain, m.Text)
			msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
			if err := client.Send(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
