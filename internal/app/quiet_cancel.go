package app

import (
	"context"
	"errors"
	"log/slog"
)

// quietCancel is the River UI's logger: the UI's background query cacher
// logs an ERROR when its query is cut off by the cancellation that stops
// it, which on every shutdown would tell ops that something failed. Such
// records are logged at debug; every other record passes unchanged.
type quietCancel struct{ slog.Handler }

func (h quietCancel) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && canceledRecord(r) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r = r.Clone()
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietCancel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietCancel{h.Handler.WithAttrs(attrs)}
}

func (h quietCancel) WithGroup(name string) slog.Handler {
	return quietCancel{h.Handler.WithGroup(name)}
}

// canceledRecord reports whether one of r's error attributes is a
// context cancellation.
func canceledRecord(r slog.Record) bool {
	canceled := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && errors.Is(err, context.Canceled) {
			canceled = true
			return false
		}
		return true
	})
	return canceled
}
