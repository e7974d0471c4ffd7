package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/app"
)

// running is a started app with what its command needs to report and stop.
type running struct {
	app     *app.App
	cfg     app.Config
	logger  *slog.Logger
	release func() // stops a throwaway database, if one was started
}

// startApp resolves the configuration (config file, environment, flags),
// builds the app and starts it; serve and demo share it. On error nothing
// is left running.
// Each adjust runs on the configuration before the app is built.
func startApp(cmd *cobra.Command, f *flags, adjust ...func(*app.Config)) (*running, error) {
	if err := f.resolve(cmd); err != nil {
		return nil, err
	}
	logger := newLogger(slog.LevelInfo)
	ctx := cmd.Context()
	cfg, release, err := f.config(ctx, logger)
	if err != nil {
		return nil, err
	}
	for _, fn := range adjust {
		fn(&cfg)
	}
	// Bind first, so that links built from the address (unsubscribe) carry
	// the real port when --addr asks for any (port 0, as the demo does).
	if cfg.Listener, err = net.Listen("tcp", cfg.Addr); err != nil {
		release()
		return nil, fmt.Errorf("listen on %s: %w (set CICLO_ADDR or --addr)", cfg.Addr, err)
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		_ = cfg.Listener.Close()
		release()
		return nil, err
	}
	if err := a.Start(context.WithoutCancel(ctx)); err != nil {
		_ = cfg.Listener.Close()
		release()
		return nil, err
	}
	return &running{app: a, cfg: cfg, logger: logger, release: release}, nil
}
