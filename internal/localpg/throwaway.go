package localpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ThrowawayStartTimeout bounds initdb plus pg_ctl start.
const ThrowawayStartTimeout = 2 * time.Minute

// throwawayStopTimeout bounds pg_ctl stop in Result.Stop.
const throwawayStopTimeout = 30 * time.Second

// startPortAttempts is how often we pick a new port when the one we picked
// was taken between closing our listener and the postmaster binding it.
const startPortAttempts = 3

// outputTailLines is how much of initdb/pg_ctl/server output errors quote.
const outputTailLines = 15

// pgSystemUser is the account initdb and postgres run as when we are root;
// both refuse to run as root.
const pgSystemUser = "postgres"

var versionRe = regexp.MustCompile(`(\d+)(?:\.(\d+))?`)

// pgBinaries are the two programs a throwaway cluster needs, from the same
// installation.
type pgBinaries struct {
	initdb string
	pgCtl  string
}

// cluster is a running throwaway cluster.
type cluster struct {
	dir     string // temporary directory holding data/, the socket and the log
	dataDir string
	logFile string
	port    int
	bins    pgBinaries
	owner   *osUser // nil: run the binaries as ourselves
	keep    bool    // durable: stop keeps the folder

	stopOnce sync.Once
	stopErr  error
}

// osUser is a system account the Postgres binaries run as.
type osUser struct {
	name     string
	uid, gid uint32
}

// startThrowaway creates and starts a throwaway cluster holding database.
func startThrowaway(ctx context.Context, database string, logger *slog.Logger) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, ThrowawayStartTimeout)
	defer cancel()

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
		owner, err = lookupSystemUser(pgSystemUser)
		if err != nil {
			return nil, err
		}
	}

	dir, err := os.MkdirTemp("", "ciclo-pg-")
	if err != nil {
		return nil, fmt.Errorf("create temporary directory: %w", err)
	}
	c := &cluster{
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logFile: filepath.Join(dir, "postgres.log"),
		bins:    bins,
		owner:   owner,
	}
	fail := func(err error) (*Result, error) {
		if stopErr := c.stop(); stopErr != nil {
			logger.WarnContext(ctx, "localpg: clean up failed throwaway cluster",
				slog.String("dir", dir), slog.String("error", stopErr.Error()))
		}
		return nil, err
	}
	if owner != nil {
		if err := os.Chown(dir, int(owner.uid), int(owner.gid)); err != nil {
			return fail(fmt.Errorf("give %s to user %s (initdb refuses to run as root): %w; set DATABASE_URL instead", dir, owner.name, err))
		}
	}

	logger.InfoContext(ctx, "localpg: initdb", slog.String("dir", dir), slog.String("initdb", bins.initdb))
	if out, err := c.run(ctx, bins.initdb,
		"-D", c.dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C",
	); err != nil {
		hint := "set DATABASE_URL to an existing Postgres database instead"
		if owner != nil {
			hint = fmt.Sprintf("user %s must be able to reach %s (point TMPDIR at a directory it can, e.g. /tmp), or %s",
				owner.name, os.TempDir(), hint)
		}
		return fail(c.commandError("initdb", err, out, "", hint))
	}

	if err := c.start(ctx, fmt.Sprintf("-k %s -c fsync=off", shellQuote(dir)), logger); err != nil {
		return fail(c.commandError("pg_ctl start", err, "", readTail(c.logFile), "set DATABASE_URL to an existing Postgres database instead"))
	}

	dbURL, err := withDatabase(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/?sslmode=disable", c.port), database)
	if err != nil {
		return fail(err)
	}
	if _, err := EnsureDatabase(ctx, dbURL); err != nil {
		return fail(fmt.Errorf("throwaway cluster in %s: %w", dir, err))
	}

	how := fmt.Sprintf("started a throwaway Postgres %s cluster in %s on port %d", version, dir, c.port)
	if owner != nil {
		how += fmt.Sprintf(" (as user %s, since Postgres refuses to run as root)", owner.name)
	}
	how += "; it is deleted on exit"
	return &Result{URL: dbURL, How: how, Stop: c.stop, dir: dir, cluster: c}, nil
}

// start starts the cluster's server on a free port of 127.0.0.1, with
// extra server options opts, trying another port if the one picked was
// taken meanwhile.
func (c *cluster) start(ctx context.Context, opts string, logger *slog.Logger) error {
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.port = port
		logger.InfoContext(ctx, "localpg: starting Postgres", slog.String("data_dir", c.dataDir), slog.Int("port", port))
		out, err := c.run(ctx, c.bins.pgCtl,
			"-D", c.dataDir, "-l", c.logFile, "-w", "-t", "60",
			"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d %s", port, opts),
			"start")
		if err == nil {
			return nil
		}
		if attempt < startPortAttempts && strings.Contains(readTail(c.logFile), "could not bind") {
			continue // someone took the port; pick another
		}
		if t := tail(out, outputTailLines); t != "" {
			return fmt.Errorf("%w\n--- pg_ctl output ---\n%s", err, t)
		}
		return err
	}
}

// stop shuts the cluster down and, unless it is kept, deletes its directory. Only the first
// call does anything; later calls return the first call's error.
func (c *cluster) stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), throwawayStopTimeout)
			out, err := c.run(ctx, c.bins.pgCtl, "-D", c.dataDir, "-m", "fast", "-w", "stop")
			cancel()
			// The server may have gone already (e.g. it got the terminal's
			// SIGINT too); that is not an error.
			if _, statErr := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); err != nil && statErr == nil {
				errs = append(errs, c.commandError("pg_ctl stop", err, out, readTail(c.logFile),
					"the server may still be running; kill it and remove the directory by hand"))
			}
		}
		if c.keep {
			// A durable cluster keeps its folder.
		} else if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove throwaway cluster directory: %w", err))
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// run runs a Postgres binary in the cluster directory, as c.owner when set,
// and returns its combined output.
func (c *cluster) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	// pg_ctl start leaves the postmaster running; should it keep our output
	// pipe open, don't wait on it forever.
	cmd.WaitDelay = 5 * time.Second
	if c.owner != nil {
		if err := runAs(cmd, c.owner); err != nil {
			return "", err
		}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// commandError describes a failed Postgres command with the end of its
// output and of the server log, and a hint on what to do.
func (c *cluster) commandError(what string, err error, out, serverLog, hint string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s failed", what, c.dir)
	if c.owner != nil {
		fmt.Fprintf(&b, " (run as user %s)", c.owner.name)
	}
	fmt.Fprintf(&b, ": %v", err)
	if t := tail(out, outputTailLines); t != "" {
		fmt.Fprintf(&b, "\n--- %s output ---\n%s", what, t)
	}
	if serverLog != "" {
		fmt.Fprintf(&b, "\n--- server log ---\n%s", serverLog)
	}
	fmt.Fprintf(&b, "\n%s", hint)
	return &commandError{msg: b.String(), err: err}
}

// commandError is a failed external command; it unwraps to the exec error.
type commandError struct {
	msg string
	err error
}

func (e *commandError) Error() string { return e.msg }
func (e *commandError) Unwrap() error { return e.err }

// findBinaries locates initdb and pg_ctl: first on PATH, then in the
// highest-versioned /usr/lib/postgresql/*/bin (Debian, Ubuntu) or
// /usr/pgsql-*/bin (RHEL, Fedora PGDG) directory holding both.
func findBinaries() (pgBinaries, error) {
	if initdb, err := exec.LookPath("initdb"); err == nil {
		// Prefer the pg_ctl next to initdb so versions match.
		if pgCtl := filepath.Join(filepath.Dir(initdb), "pg_ctl"); isExecutable(pgCtl) {
			return pgBinaries{initdb: initdb, pgCtl: pgCtl}, nil
		}
		if pgCtl, err := exec.LookPath("pg_ctl"); err == nil {
			return pgBinaries{initdb: initdb, pgCtl: pgCtl}, nil
		}
	}
	var dirs []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		matches, _ := filepath.Glob(pattern) // only ErrBadPattern, and these are fine
		dirs = append(dirs, matches...)
	}
	for _, dir := range sortByVersionDesc(dirs) {
		b := pgBinaries{initdb: filepath.Join(dir, "initdb"), pgCtl: filepath.Join(dir, "pg_ctl")}
		if isExecutable(b.initdb) && isExecutable(b.pgCtl) {
			return b, nil
		}
	}
	return pgBinaries{}, errors.New("no initdb and pg_ctl on PATH or in /usr/lib/postgresql/*/bin: " +
		"install the Postgres server package (e.g. apt install postgresql) or set DATABASE_URL")
}

// sortByVersionDesc orders Postgres bin directories by the version in their
// path, highest first: /usr/lib/postgresql/16/bin before .../9.6/bin.
func sortByVersionDesc(dirs []string) []string {
	version := func(dir string) [2]int {
		m := versionRe.FindStringSubmatch(dir)
		if m == nil {
			return [2]int{-1, -1}
		}
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2]) // "" -> 0
		return [2]int{major, minor}
	}
	out := slices.Clone(dirs)
	slices.SortStableFunc(out, func(a, b string) int {
		va, vb := version(a), version(b)
		if va[0] != vb[0] {
			return vb[0] - va[0]
		}
		return vb[1] - va[1]
	})
	return out
}

// binaryVersion returns the major version of a Postgres binary, e.g. "15".
func binaryVersion(ctx context.Context, bin string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("run %s --version: %w", bin, err)
	}
	// "initdb (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
	s := string(out)
	if i := strings.Index(s, ")"); i >= 0 {
		s = s[i+1:]
	}
	m := versionRe.FindStringSubmatch(s)
	if m == nil {
		return "", fmt.Errorf("no version in %s --version output %q", bin, strings.TrimSpace(string(out)))
	}
	if major, _ := strconv.Atoi(m[1]); major < 10 && m[2] != "" {
		return m[1] + "." + m[2], nil // 9.6 and older had two-part majors
	}
	return m[1], nil
}

// lookupSystemUser finds the account to run Postgres as when we are root.
func lookupSystemUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root, which initdb refuses, and there is no %q user to run it as (%w): "+
			"set DATABASE_URL, run ciclo as a normal user, or install the Postgres server package", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user %q has non-numeric uid %q or gid %q; set DATABASE_URL", name, u.Uid, u.Gid)
	}
	return &osUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port on 127.0.0.1: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pick a free port on 127.0.0.1: %w", err)
	}
	return port, nil
}

// childEnv is our environment without PG* variables, which would point
// pg_ctl and initdb at another cluster, and with a C locale so initdb's
// messages are in English, as the hints expect.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// shellQuote quotes s for /bin/sh, which pg_ctl hands its -o options to.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// isExecutable reports whether path is a regular file with an execute bit.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// readTail returns the last lines of a file, or "" if it cannot be read.
func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return tail(string(b), outputTailLines)
}

// tail returns the last n lines of s, without trailing blank lines.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
