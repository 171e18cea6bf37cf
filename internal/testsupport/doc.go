// Package testsupport gathers what the tests need to drive real tools and measure work, and
// nothing the module runs: cdp drives headless Chromium, nginxtest starts a real nginx,
// cputime reads CPU clocks for benchmarks and cost bounds, testskip decides what a missing
// tool or an unmeasured cost means.
package testsupport
