package worker_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is the CPU time used so far by this process and by the
// Postgres backends serving it (found by the local ports of this process'
// TCP connections in their process titles). Postgres is shared with other
// work on the machine, so wall-clock rates swing; CPU time spent on one
// sweep does much less.
type cpuSample struct {
	self     time.Duration
	backends map[int]time.Duration
}

func sampleCPU() cpuSample {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	s := cpuSample{
		self:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		backends: map[int]time.Duration{},
	}
	ports := ownPorts()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmd, err := os.ReadFile(p)
		if err != nil || !strings.HasPrefix(string(cmd), "postgres: ") {
			continue
		}
		i := strings.Index(string(cmd), "127.0.0.1(")
		if i < 0 {
			continue
		}
		rest := string(cmd)[i+len("127.0.0.1("):]
		port, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, ')'), 0)])
		if err != nil || !ports[port] {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		s.backends[pid] = procCPU(pid)
	}
	return s
}

// since returns this process' and its backends' CPU time since s0.
func (s cpuSample) since(s0 cpuSample) (self, db time.Duration) {
	for pid, t := range s.backends {
		db += t - s0.backends[pid]
	}
	return s.self - s0.self, db
}

// procCPU returns utime+stime of a process.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100 // USER_HZ
}

// ownPorts returns the local TCP ports of this process' sockets.
func ownPorts() map[int]bool {
	inodes := map[string]bool{}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		l, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || !inodes[fs[9]] {
				continue
			}
			local := fs[1]
			port, err := strconv.ParseInt(local[strings.LastIndexByte(local, ':')+1:], 16, 64)
			if err == nil {
				ports[int(port)] = true
			}
		}
	}
	return ports
}
