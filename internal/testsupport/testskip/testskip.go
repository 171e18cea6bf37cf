// Package testskip decides what the tests that need more than Go do when they cannot run: a
// test that drives a real tool (Chromium, Python with Flask and itsdangerous, nginx, PHP,
// Node) skips locally and fails in CI without it, and a package's skips are listed at the end
// of its run, where `go test ./...` (which shows a passing package's output only with -v)
// would otherwise hide them; a test that bounds a cost by timing runs only where it is asked
// for, in its own step of CI.
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

// CostEnv is the environment variable that asks for the cost-ratio tests: timing ratios (a
// hostile input against a benign one of the same size) mean something only on a machine not
// shared with the rest of the test suite, so `go test ./...` skips them and CI runs them in a
// step of their own.
const CostEnv = "SIGNED_COOKIES_COST"

// Costs reports whether the cost-ratio tests run.
func Costs() bool { return os.Getenv(CostEnv) == "1" }

// CostTest skips a test that bounds a cost by timing, unless the cost-ratio tests run.
func CostTest(t testing.TB) {
	t.Helper()
	if !Costs() {
		t.Skipf("a cost ratio: measured only with %s=1 (its own step of CI)", CostEnv)
	}
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
