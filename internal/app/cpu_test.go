package app_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ).
const clockTick = 10 * time.Millisecond

// cpuMeter measures the CPU time this process and the Postgres backends
// serving its connections spend, so that benchmarks can report CPU per
// operation, which varies much less than latency on a shared machine.
type cpuMeter struct {
	pool     *pgxpool.Pool
	self     time.Duration
	backends map[int]time.Duration
}

func startCPUMeter(t testing.TB, pool *pgxpool.Pool) *cpuMeter {
	t.Helper()
	m := &cpuMeter{pool: pool}
	m.self, m.backends = selfCPU(t), backendCPU(t, pool)
	return m
}

// stop returns the CPU time of this process and of its Postgres backends
// since start. Backends that exited in between are not counted.
func (m *cpuMeter) stop(t testing.TB) (self, pg time.Duration) {
	t.Helper()
	for pid, d := range backendCPU(t, m.pool) {
		pg += d - m.backends[pid]
	}
	return selfCPU(t) - m.self, pg
}

func selfCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU returns the CPU time so far of each Postgres backend whose
// client is a TCP socket of this process.
func backendCPU(t testing.TB, pool *pgxpool.Pool) map[int]time.Duration {
	t.Helper()
	ports := localPorts(t)
	rows, err := pool.Query(context.Background(),
		`SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1) AND pid <> pg_backend_pid()`, ports)
	require.NoError(t, err)
	out := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		require.NoError(t, rows.Scan(&pid))
		if d, ok := procCPU(filepath.Join("/proc", strconv.Itoa(pid), "stat")); ok {
			out[pid] = d
		}
	}
	require.NoError(t, rows.Err())
	return out
}

// localPorts lists the local TCP ports of this process's sockets.
func localPorts(t testing.TB) []int32 {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var ports []int32
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !inodes[fields[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil {
				ports = append(ports, int32(p))
			}
		}
		f.Close()
	}
	return ports
}

// procCPU reads utime + stime from a /proc/<pid>/stat file.
func procCPU(path string) (time.Duration, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	// Fields after the parenthesized command: state is field 3, utime 14, stime 15.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0, false
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+s) * clockTick, true
}
