package localpg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// DataDirEnv is the environment variable that names the data folder.
const DataDirEnv = "CICLO_DATA_DIR"

// systemDataDir is DefaultDataDir for root: the FHS place for a system
// service's state, which the postgres account can reach (root's home
// usually is not).
const systemDataDir = "/var/lib/ciclo/pgdata"

// DefaultDataDir returns the folder a durable cluster lives in when
// Options.DataDir names none: $XDG_DATA_HOME/ciclo/pgdata (by default
// ~/.local/share/ciclo/pgdata), or /var/lib/ciclo/pgdata for root. It does
// not depend on the working directory, so ciclo finds its data wherever it
// is started from.
func DefaultDataDir() (string, error) {
	if os.Geteuid() == 0 {
		return systemDataDir, nil
	}
	if xdg := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(xdg) {
		return filepath.Join(xdg, "ciclo", "pgdata"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the default data folder: %w; set %s", err, DataDirEnv)
	}
	return filepath.Join(home, ".local", "share", "ciclo", "pgdata"), nil
}

// IsCluster reports whether dir holds a Postgres data folder (initdb ran
// there).
func IsCluster(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	return err == nil
}

// startDurable starts the cluster in dataDir, creating it with initdb if
// the folder is missing or empty, and makes sure database exists. Unlike a
// throwaway cluster it runs with fsync on and Result.Stop only stops the
// server: the folder is kept. When the cluster is already running (another
// ciclo process started it), it is used as is and Stop leaves it running.
func startDurable(ctx context.Context, dataDir, database string, logger *slog.Logger) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, ThrowawayStartTimeout)
	defer cancel()

	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("data folder %q: %w", dataDir, err)
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	version, err := binaryVersion(ctx, bins.initdb)
	if err != nil {
		return nil, err
	}
	var owner *osUser
	if os.Geteuid() == 0 {
		if owner, err = lookupSystemUser(pgSystemUser); err != nil {
			return nil, err
		}
	}
	c := &cluster{
		dir:     dataDir,
		dataDir: dataDir,
		logFile: filepath.Join(dataDir, "postgres.log"),
		bins:    bins,
		owner:   owner,
		keep:    true,
	}
	hint := fmt.Sprintf("set %s to another folder, or DATABASE_URL to an existing Postgres database", DataDirEnv)
	if owner != nil {
		hint = fmt.Sprintf("user %s must be able to reach %s (every folder above it needs o+x); %s", owner.name, dataDir, hint)
	}

	created := false
	switch {
	case IsCluster(dataDir):
		b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
		if err != nil {
			return nil, fmt.Errorf("data folder %s: %w", dataDir, err)
		}
		if have := strings.TrimSpace(string(b)); have != version {
			return nil, fmt.Errorf("data folder %s was made by Postgres %s but the Postgres binaries found (%s) are version %s: "+
				"install Postgres %s's server package, or move the data with pg_upgrade or pg_dump", dataDir, have, filepath.Dir(bins.initdb), version, have)
		}
	default:
		if err := prepareDataDir(dataDir, owner); err != nil {
			return nil, fmt.Errorf("%w; %s", err, hint)
		}
		logger.InfoContext(ctx, "localpg: initdb for a durable cluster", slog.String("data_dir", dataDir), slog.String("initdb", bins.initdb))
		if out, err := c.run(ctx, bins.initdb, "-D", dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"); err != nil {
			return nil, c.commandError("initdb", err, out, "", hint)
		}
		created = true
	}

	started := false
	if port, ok := c.runningPort(ctx); ok {
		c.port = port
		logger.InfoContext(ctx, "localpg: the durable cluster is already running", slog.String("data_dir", dataDir), slog.Int("port", port))
	} else {
		if err := c.start(ctx, "-k ''", logger); err != nil {
			return nil, c.commandError("pg_ctl start", err, "", readTail(c.logFile), hint)
		}
		started = true
	}
	stop := func() error { return nil }
	if started {
		stop = c.stop
	}
	fail := func(err error) (*Result, error) {
		if stopErr := stop(); stopErr != nil {
			logger.WarnContext(ctx, "localpg: stop durable cluster", slog.String("data_dir", dataDir), slog.String("error", stopErr.Error()))
		}
		return nil, err
	}

	dbURL, err := withDatabase(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/?sslmode=disable", c.port), database)
	if err != nil {
		return fail(err)
	}
	if _, err := EnsureDatabase(ctx, dbURL); err != nil {
		return fail(fmt.Errorf("durable cluster in %s: %w", dataDir, err))
	}
	state := "existing"
	if created {
		state = "new"
	}
	how := fmt.Sprintf("using the durable Postgres %s cluster in %s (%s; database %s on 127.0.0.1:%d)", version, dataDir, state, database, c.port)
	if owner != nil {
		how += fmt.Sprintf(", run as user %s", owner.name)
	}
	how += "; it is kept across restarts"
	return &Result{URL: dbURL, How: how, Stop: stop, DataDir: dataDir}, nil
}

// prepareDataDir creates dir (and its parents) for initdb, or checks that
// an existing dir is empty, and gives it to owner when set.
func prepareDataDir(dir string, owner *osUser) error {
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return fmt.Errorf("data folder %s is not empty and holds no Postgres cluster (no PG_VERSION)", dir)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("data folder %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create the data folder's parent: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create data folder: %w", err)
	}
	if owner != nil {
		if err := os.Chown(dir, int(owner.uid), int(owner.gid)); err != nil {
			return fmt.Errorf("give %s to user %s (initdb refuses to run as root): %w", dir, owner.name, err)
		}
	}
	return nil
}

// runningPort reports the port of the cluster's running server, if
// pg_ctl status says one runs in the data folder.
func (c *cluster) runningPort(ctx context.Context) (int, bool) {
	cmd := exec.CommandContext(ctx, c.bins.pgCtl, "-D", c.dataDir, "status")
	cmd.Env = childEnv()
	if c.owner != nil {
		if err := runAs(cmd, c.owner); err != nil {
			return 0, false
		}
	}
	if err := cmd.Run(); err != nil {
		return 0, false // exit 3: not running
	}
	// postmaster.pid: pid, data dir, start time, port, socket dir, listen
	// address, shmem key, status.
	f, err := os.Open(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if line == 4 {
			port, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
			return port, err == nil && port > 0
		}
	}
	return 0, false
}
