package channels

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Outbox is an email Channel that writes each message to a directory as an .eml file instead
// of sending it; ciclo uses it when no SMTP server is configured. Files are named
// <dir>/<timestamp>-<ID>.eml (timestamp in UTC, sortable) and appear atomically.
type Outbox struct {
	dir    string
	now    func() time.Time
	closed atomic.Bool
}

// NewOutbox returns an Outbox writing into dir, creating it (mode 0o755) if needed. It errors
// if dir is empty or cannot be created.
func NewOutbox(dir string) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("outbox: no directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return &Outbox{dir: dir, now: time.Now}, nil
}

// Name returns "email".
func (o *Outbox) Name() string { return EmailName }

// Send writes m as an .eml file. Invalid messages are permanent *SendErrors; file system
// errors are temporary. Result.Response is the file's path.
func (o *Outbox) Send(ctx context.Context, m *Message) (Result, error) {
	if o.closed.Load() {
		return Result{}, permanent(0, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, temporary(0, fmt.Errorf("outbox: %w", err))
	}
	e, err := buildEmail(m)
	if err != nil {
		return Result{}, err
	}

	name := o.now().UTC().Format("20060102T150405.000000000Z") + "-" + fileSafe(m.ID) + ".eml"
	path := filepath.Join(o.dir, name)
	if err := writeAtomic(path, e.msg.WriteTo); err != nil {
		return Result{}, temporary(0, fmt.Errorf("outbox: %w", err))
	}
	return Result{ProviderID: e.messageID, Response: path}, nil
}

// Close makes later Sends fail with ErrClosed.
func (o *Outbox) Close() error {
	o.closed.Store(true)
	return nil
}

// writeAtomic writes through a temporary file in the same directory and renames it into place,
// so readers never see a partial file.
func writeAtomic(path string, write func(io.Writer) (int64, error)) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.eml")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = write(f); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// fileSafe replaces bytes that are awkward in file names (path separators and the like).
func fileSafe(id string) string {
	b := []byte(id)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}
