// Package smtptest gives tests a real, in-process SMTP server (internal/smtpsink) on
// 127.0.0.1, closed when the test ends.
package smtptest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/smtpsink"
)

// Options configure a server; see smtpsink.Options.
type Options = smtpsink.Options

// Received is one message the server accepted; see smtpsink.Received.
type Received = smtpsink.Received

// Server is a running smtpsink server with test helpers.
type Server struct{ *smtpsink.Server }

// Start starts a server on 127.0.0.1:0 with default Options. It is closed in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWithOptions(t, Options{})
}

// StartWithOptions starts a server on 127.0.0.1:0 configured by opts. It is closed in
// t.Cleanup. It fails the test if the server cannot listen.
func StartWithOptions(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := smtpsink.Listen(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return &Server{s}
}

// WaitMessages waits until at least n messages have been received and returns them. It fails
// the test if that does not happen within timeout. It wakes on each arrival; it does not poll.
func (s *Server) WaitMessages(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.WaitCount(ctx, n); err != nil {
		require.FailNowf(t, "smtptest: timed out waiting for messages",
			"want %d messages within %s, got %d", n, timeout, len(s.Messages()))
	}
	return s.Messages()
}
