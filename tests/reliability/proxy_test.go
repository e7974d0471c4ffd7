package reliability

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// proxy forwards a fixed local port to a backend and can be taken down
// (connections refused, open ones cut) and brought up again on the same
// port: a server that goes away.
type proxy struct {
	t       *testing.T
	addr    string
	backend string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

// newProxy returns a proxy to backend, down.
func newProxy(t *testing.T, backend string) *proxy {
	p := &proxy{t: t, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), backend: backend, conns: map[net.Conn]bool{}}
	t.Cleanup(p.down)
	return p
}

// up listens again.
func (p *proxy) up() {
	p.t.Helper()
	var (
		ln  net.Listener
		err error
	)
	for range 50 { // the port may linger briefly after down
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(p.t, err, "proxy listen %s", p.addr)
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

// down stops listening and cuts every open connection.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) forward(c net.Conn) {
	b, err := net.Dial("tcp", p.backend)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil {
		p.mu.Unlock()
		_ = c.Close()
		_ = b.Close()
		return
	}
	p.conns[c], p.conns[b] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(b, c); _ = b.Close() }()
	_, _ = io.Copy(c, b)
	_ = c.Close()
}
