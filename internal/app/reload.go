package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// ReloadDebounceDefault is how long the rules watcher waits after the last
// change to the file before reloading, so that an editor's several writes
// (truncate, write, rename over) cause one reload of the finished file.
const ReloadDebounceDefault = 100 * time.Millisecond

// ReloadSettleDefault is how long the rules file must have gone unchanged
// before the watcher reloads it. An editor or a deploy that writes the file
// in several steps (a first part, then the rest a second later) would
// otherwise have a partial rule set loaded, and events judged by it in the
// meantime are never judged again. Files renamed into place are complete at
// once but wait too: the watcher cannot tell them apart.
const ReloadSettleDefault = 2 * time.Second

// reloader is the App's hot-reload state.
type reloader struct {
	mu    sync.Mutex // serialises reloads and guards hooks
	hooks []func(context.Context, *rules.RuleSet)
	// failed is the last reload's rejection; nil once a reload succeeds.
	failed atomic.Pointer[ReloadFailure]

	watcher *fsnotify.Watcher
	done    chan struct{} // closed when the watch loop has exited
}

// ReloadFailure is a rejected rules reload: when, and why.
type ReloadFailure struct {
	At    time.Time
	Error string
}

// LastReloadFailure returns the last reload's rejection, or nil when the
// last reload (or the start) put its file in force. /readyz shows it.
func (a *App) LastReloadFailure() *ReloadFailure {
	return a.reload.failed.Load()
}

// OnReload registers fn to run after every successful reload, with the
// new rule set already in force (a.Rules). Hooks run one at a time, in
// registration order, in the goroutine that reloaded; use them for work
// that depends on the rule set, such as re-registering periodic jobs for
// scheduled rules. Register before Start to see every reload.
func (a *App) OnReload(fn func(ctx context.Context, rs *rules.RuleSet)) {
	a.reload.mu.Lock()
	defer a.reload.mu.Unlock()
	a.reload.hooks = append(a.reload.hooks, fn)
}

// Reload reads the rules file again and, if it is valid, puts it in force
// and runs the OnReload hooks. An invalid file changes nothing: the last
// good rule set keeps running and the error (a *rules.LoadErrors when the
// file has problems) is returned for the caller to log. Email templates
// are loaded at start only: a rule set naming a template the running
// process does not have is rejected too. A file whose content did not
// change is a no-op.
func (a *App) Reload(ctx context.Context) error {
	a.reload.mu.Lock()
	defer a.reload.mu.Unlock()
	rs, _, err := LoadRules(a.cfg.RulesPath)
	if err == nil {
		err = checkTemplates(a.cfg.RulesPath, rs, a.Templates)
	}
	if err != nil {
		err = fmt.Errorf("reload rules %q: %w", a.cfg.RulesPath, err)
		a.reload.failed.Store(&ReloadFailure{At: a.cfg.Now(), Error: err.Error()})
		a.Metrics.RulesLoaded(false)
		return err
	}
	a.reload.failed.Store(nil)
	a.Metrics.RulesLoaded(true)
	old := a.Rules.Load()
	if old != nil && old.Version == rs.Version {
		a.cfg.Logger.DebugContext(ctx, "app: rules file unchanged", slog.String("rules_version", rs.Version))
		return nil
	}
	a.Rules.Store(rs)
	a.Metrics.Known(metricLabels(rs))
	prev := ""
	if old != nil {
		prev = old.Version
	}
	a.cfg.Logger.InfoContext(ctx, "app: rules reloaded", slog.String("rules", a.cfg.RulesPath),
		slog.String("rules_version", rs.Version), slog.String("previous_version", prev),
		slog.Int("num_rules", len(rs.Rules)), slog.Int("num_warnings", len(rs.Warnings)))
	for _, w := range rs.Warnings {
		a.cfg.Logger.WarnContext(ctx, "app: rules warning", slog.String("warning", w.Error()))
	}
	for _, fn := range a.reload.hooks {
		fn(ctx, rs)
	}
	return nil
}

// ReloadOn reloads the rules each time ch delivers (serve passes SIGHUP),
// logging rejected files, until ctx is done or ch is closed.
func (a *App) ReloadOn(ctx context.Context, ch <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			a.reloadAndLog(ctx, "signal")
		}
	}
}

// reloadAndLog is Reload at the top of a loop that must go on: a rejected
// file is logged with every error, and the last good set stays.
func (a *App) reloadAndLog(ctx context.Context, trigger string) {
	err := a.Reload(ctx)
	if err == nil {
		return
	}
	attrs := []any{slog.String("trigger", trigger), slog.String("rules", a.cfg.RulesPath),
		slog.String("rules_version", a.Rules.Load().Version), slog.String("error", err.Error())}
	var les *rules.LoadErrors
	if errors.As(err, &les) {
		attrs = append(attrs, slog.Int("num_errors", len(*les)))
	}
	a.cfg.Logger.ErrorContext(ctx, "app: rules reload rejected; the last good rule set keeps running", attrs...)
}

// startWatch watches the rules file's directory (editors replace files
// rather than write them in place, which a watch on the file itself would
// lose) and reloads, debounced, when the file changes.
func (a *App) startWatch(ctx context.Context) error {
	if a.cfg.NoWatchRules {
		return nil
	}
	path, err := filepath.Abs(a.cfg.RulesPath)
	if err != nil {
		return fmt.Errorf("watch rules file: %w", err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch rules file: %w", err)
	}
	if err := w.Add(filepath.Dir(path)); err != nil {
		_ = w.Close()
		return fmt.Errorf("watch rules directory %q: %w", filepath.Dir(path), err)
	}
	a.reload.watcher, a.reload.done = w, make(chan struct{})
	go a.watchLoop(ctx, w, path)
	return nil
}

func (a *App) watchLoop(ctx context.Context, w *fsnotify.Watcher, path string) {
	defer close(a.reload.done)
	debounce := a.cfg.ReloadDebounce
	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	var waitingSince time.Time // when the watcher began waiting for the file to settle
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) == path && !ev.Has(fsnotify.Chmod) {
				timer.Reset(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			a.cfg.Logger.WarnContext(ctx, "app: rules watcher error", slog.String("error", err.Error()))
		case <-timer.C:
			if wait := settleWait(path, a.cfg.ReloadSettle); wait > 0 {
				if waitingSince.IsZero() {
					waitingSince = time.Now()
					a.cfg.Logger.InfoContext(ctx, "app: rules file changed; waiting until it has not changed for the settle time before reloading",
						slog.String("rules", a.cfg.RulesPath), slog.Duration("settle", a.cfg.ReloadSettle))
				}
				timer.Reset(wait)
				continue
			}
			if !waitingSince.IsZero() {
				a.cfg.Logger.InfoContext(ctx, "app: rules file settled; reloading", slog.String("rules", a.cfg.RulesPath),
					slog.Duration("settle", a.cfg.ReloadSettle), slog.Duration("waited", time.Since(waitingSince).Round(time.Millisecond)))
				waitingSince = time.Time{}
			}
			a.reloadAndLog(ctx, "file change")
		}
	}
}

// settleWait is how much longer the file at path must go unchanged to have
// been stable for settle; 0 when it has (or cannot be read: Reload then
// says why).
func settleWait(path string, settle time.Duration) time.Duration {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	age := time.Since(fi.ModTime())
	if age >= settle {
		return 0
	}
	return min(settle-age, settle)
}

// stopWatch stops the watcher and waits for its loop to exit.
func (a *App) stopWatch() error {
	if a.reload.watcher == nil {
		return nil
	}
	err := a.reload.watcher.Close()
	<-a.reload.done
	a.reload.watcher = nil
	return err
}

// syncSweeps re-registers the periodic sweeps after a reload, so added,
// changed and removed schedules take effect without a restart.
func (a *App) syncSweeps(ctx context.Context, rs *rules.RuleSet) {
	added, removed, err := a.Sweeps.Sync(rs)
	if err != nil {
		a.cfg.Logger.ErrorContext(ctx, "app: re-registering scheduled sweeps failed", slog.String("error", err.Error()))
		return
	}
	if len(added)+len(removed) > 0 {
		a.cfg.Logger.InfoContext(ctx, "app: scheduled sweeps updated", slog.Any("added", added), slog.Any("removed", removed))
	}
}

// metricLabels lists the label values rs and ciclo's fixed vocabulary
// give the metrics, for Metrics.Known.
func metricLabels(rs *rules.RuleSet) metrics.Labels {
	l := metrics.Labels{
		Channels: []string{"email", "webhook"},
		DeliveryStatuses: []string{store.DeliverySent, store.DeliverySuppressed, store.DeliverySkippedCap,
			store.DeliveryFailed, "retry"},
		JobKinds: []string{jobs.EvaluateArgs{}.Kind(), jobs.DispatchArgs{}.Kind(), jobs.DispatchBatchArgs{}.Kind(),
			jobs.SweepArgs{}.Kind(), jobs.SweepShardArgs{}.Kind(), jobs.CouponExpiryArgs{}.Kind(),
			jobs.PointsExpiryArgs{}.Kind(), jobs.TierSweepArgs{}.Kind()},
		Queues:    []string{jobs.QueueEvaluate, jobs.QueueEmail, jobs.QueueWebhook, jobs.QueueSweep},
		JobStates: []string{"available", "cancelled", "discarded", "pending", "retryable", "running", "scheduled"},
	}
	l.EventTypes = []string{"other"} // the API's label for types no rule reacts to
	if rs == nil {
		return l
	}
	targets := map[string]bool{}
	for _, r := range rs.Rules {
		l.Rules = append(l.Rules, r.Name)
		if r.On != "" {
			l.EventRules = append(l.EventRules, r.Name)
			if !slices.Contains(l.EventTypes, r.On) && r.On != "other" {
				l.EventTypes = append(l.EventTypes, r.On)
			}
		} else {
			l.ScheduledRules = append(l.ScheduledRules, r.Name)
		}
		for _, a := range r.Actions {
			if a.Stage != "" {
				targets[a.Stage] = true
			}
		}
	}
	for _, from := range rs.Stages {
		for _, to := range rs.Stages {
			if from != to && targets[to] {
				l.Transitions = append(l.Transitions, [2]string{from, to})
			}
		}
	}
	return l
}
