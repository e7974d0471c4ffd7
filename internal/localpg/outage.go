package localpg

import (
	"context"
	"errors"
	"fmt"
)

// errNotThrowaway is returned by StopServer and StartServer for a server
// Find did not start.
var errNotThrowaway = errors.New("not a throwaway cluster: only a cluster Find started can be stopped and started")

// StopServer stops a throwaway cluster's server (fast shutdown: open
// sessions are ended) but keeps its data, so that StartServer can bring it
// back on the same port. Tests use it to take the database away.
func (r *Result) StopServer(ctx context.Context) error {
	c := r.cluster
	if c == nil {
		return errNotThrowaway
	}
	if out, err := c.run(ctx, c.bins.pgCtl, "-D", c.dataDir, "-m", "fast", "-w", "stop"); err != nil {
		return c.commandError("pg_ctl stop", err, out, readTail(c.logFile), "the server may have stopped already")
	}
	return nil
}

// StartServer starts a throwaway cluster stopped by StopServer again, on the
// same port, and waits until it accepts connections.
func (r *Result) StartServer(ctx context.Context) error {
	c := r.cluster
	if c == nil {
		return errNotThrowaway
	}
	out, err := c.run(ctx, c.bins.pgCtl, "-D", c.dataDir, "-l", c.logFile, "-w", "-t", "60",
		"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", c.port, shellQuote(c.dir)), "start")
	if err != nil {
		return c.commandError(fmt.Sprintf("pg_ctl start on port %d", c.port), err, out, readTail(c.logFile),
			"another process may have taken the port")
	}
	return nil
}
