package bench

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// ResetPeakRSS resets the kernel's record of this process' peak resident
// set size (VmHWM), so that PeakRSS reports the peak from now on. Linux only;
// elsewhere PeakRSS keeps the process' lifetime peak.
func ResetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// PeakRSS returns VmHWM, the process' peak resident set size, in bytes; 0
// where /proc/self/status is missing.
func PeakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
