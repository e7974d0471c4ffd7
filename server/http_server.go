package server

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults for HTTPConfig. Clients of the API are servers posting small
// bodies; a connection that dawdles is closed rather than left holding a
// file descriptor.
const (
	// ReadHeaderTimeoutDefault bounds reading a request's headers.
	ReadHeaderTimeoutDefault = 5 * time.Second
	// ReadTimeoutDefault bounds reading a whole request, body included: a
	// body trickled in byte by byte is cut off.
	ReadTimeoutDefault = 30 * time.Second
	// WriteTimeoutDefault bounds a request from the end of its headers to
	// the end of its response. It is longer than RequestTimeoutDefault so
	// that a request that timed out still gets its 503.
	WriteTimeoutDefault = 30 * time.Second
	// IdleTimeoutDefault bounds how long a keep-alive connection waits for
	// its next request.
	IdleTimeoutDefault = 60 * time.Second
	// RequestTimeoutDefault is the deadline of a request's context: a
	// request stuck behind a database lock is cancelled and answered 503.
	RequestTimeoutDefault = 10 * time.Second
	// MaxConnectionsDefault caps open client connections; more wait in the
	// kernel's accept queue until one closes. Well below the usual file
	// descriptor limit, which the database pool and SMTP need too.
	MaxConnectionsDefault = 1024
)

// HTTPConfig are the HTTP server's limits. Zero fields take the defaults.
type HTTPConfig struct {
	// ReadHeaderTimeout, default ReadHeaderTimeoutDefault.
	ReadHeaderTimeout time.Duration
	// ReadTimeout, default ReadTimeoutDefault.
	ReadTimeout time.Duration
	// WriteTimeout, default WriteTimeoutDefault.
	WriteTimeout time.Duration
	// IdleTimeout, default IdleTimeoutDefault.
	IdleTimeout time.Duration
	// RequestTimeout is every route's request deadline, default
	// RequestTimeoutDefault. The server takes it from Config and OpsConfig.
	RequestTimeout time.Duration
	// MaxConnections caps concurrent connections, default MaxConnectionsDefault.
	MaxConnections int
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c HTTPConfig) WithDefaults() HTTPConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, ReadHeaderTimeoutDefault)
	def(&c.ReadTimeout, ReadTimeoutDefault)
	def(&c.WriteTimeout, WriteTimeoutDefault)
	def(&c.IdleTimeout, IdleTimeoutDefault)
	def(&c.RequestTimeout, RequestTimeoutDefault)
	if c.MaxConnections <= 0 {
		c.MaxConnections = MaxConnectionsDefault
	}
	return c
}

// NewHTTPServer returns an http.Server for h with cfg's timeouts. Serve it
// on LimitListener(ln, cfg.MaxConnections).
func NewHTTPServer(h http.Handler, cfg *HTTPConfig, logger *slog.Logger) *http.Server {
	c := cfg.WithDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// LimitListener returns a listener that holds at most n accepted
// connections open at once; Accept waits for one to close.
func LimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
