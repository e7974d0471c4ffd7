package smtptest_test

import (
	"net/smtp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/smtptest"
)

func TestServer(t *testing.T) {
	t.Parallel()

	send := func(t *testing.T, s *smtptest.Server, body string) error {
		t.Helper()
		return smtp.SendMail(s.Addr, nil, "a@example.com", []string{"b@example.com"}, []byte(body))
	}
	const plain = "Subject: hi\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n"

	t.Run("RecordsAndParses", func(t *testing.T) {
		t.Parallel()
		s := smtptest.Start(t)
		require.NoError(t, send(t, s, plain))
		msgs := s.WaitMessages(t, 1, 5*time.Second)
		require.NoError(t, msgs[0].ParseErr)
		require.Equal(t, "a@example.com", msgs[0].From)
		require.Equal(t, []string{"b@example.com"}, msgs[0].To)
		require.Equal(t, "hi", msgs[0].Header.Get("Subject"))
		require.Equal(t, "hello", msgs[0].Text)
		require.Equal(t, 1, s.Connections())
		require.Equal(t, 1, s.Attempts())
	})

	t.Run("FailNextScript", func(t *testing.T) {
		t.Parallel()
		s := smtptest.Start(t)
		s.FailNext(451, "later", 2)
		require.ErrorContains(t, send(t, s, plain), "451")
		require.ErrorContains(t, send(t, s, plain), "451")
		require.NoError(t, send(t, s, plain))
		s.FailNext(550, "nope", -1)
		for range 3 {
			require.ErrorContains(t, send(t, s, plain), "550")
		}
		require.Len(t, s.Messages(), 1)
		require.Equal(t, 6, s.Attempts())
	})
}
