package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuietCancel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level slog.Level // of the handler
		err   error
		want  string // "" if nothing is logged
	}{
		{"CanceledAtInfo", slog.LevelInfo, fmt.Errorf("query: %w", context.Canceled), ""},
		{"CanceledAtDebug", slog.LevelDebug, context.Canceled, "level=DEBUG"},
		{"OtherError", slog.LevelInfo, errors.New("connection refused"), "level=ERROR"},
		{"Deadline", slog.LevelInfo, context.DeadlineExceeded, "level=ERROR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(quietCancel{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level})}).With("service", "ui")
			logger.Error("querycacher: Error running query", "err", tc.err)
			if tc.want == "" {
				require.Empty(t, buf.String())
				return
			}
			require.Contains(t, buf.String(), tc.want)
			require.Contains(t, buf.String(), "service=ui")
		})
	}
}
