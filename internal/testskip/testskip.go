// Package testskip is for the tests that drive real tools (Chromium, Python with Flask and
// itsdangerous, nginx): without the tool a test skips locally and fails in CI, and a package's
// skips are listed at the end of its run, where `go test ./...` (which shows a passing
// package's output only with -v) would otherwise hide them.
package testskip

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

var (
	mu      sync.Mutex
	skipped = map[string][]string{} // tool → tests
)

// Missing fails t when the CI environment variable is set, and skips it otherwise, noting
// the tool for the summary.
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing, and CI is set: in CI a missing tool is a failure, not a skip", what)
	}
	mu.Lock()
	skipped[what] = append(skipped[what], t.Name())
	mu.Unlock()
	t.Skipf("%s is missing; skipping (set CI to make this a failure)", what)
}

// Main runs the tests, then lists what was skipped: on the terminal when there is one (go
// test keeps a passing package's output to itself), else on standard error.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if len(skipped) == 0 {
		return code
	}
	var b strings.Builder
	tools := make([]string, 0, len(skipped))
	for tool := range skipped {
		tools = append(tools, tool)
	}
	sort.Strings(tools)
	fmt.Fprintf(&b, "\nskipped for want of a tool (install it, or set CI=1 to make these failures):\n")
	for _, tool := range tools {
		fmt.Fprintf(&b, "  %s: %d test(s): %s\n", tool, len(skipped[tool]), strings.Join(skipped[tool], ", "))
	}
	out := os.Stderr
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		out = tty
	}
	fmt.Fprint(out, b.String())
	return code
}
