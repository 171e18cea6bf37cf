// Metrics and logs of what the policy did: metrics count every event, created once per
// process and registered again on every Provision (a config reload gets a fresh registry);
// warnings are bounded per request (by the engine) and across requests (here), so a flood of
// bad requests cannot fill the disk. Neither ever carries a value or an ID.

package signedcookies

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"

	"github.com/signedcookies/caddy-signedcookies/internal/engine"
)

type metrics struct {
	issued   prometheus.Counter
	verified prometheus.Counter
	resigned prometheus.Counter
	signed   prometheus.Counter
	invalid  *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	adopted  *prometheus.CounterVec
	keyring  *prometheus.CounterVec
	// flaskKeys counts the alarms of flaskWatch: every Flask session failing its signature.
	flaskKeys prometheus.Counter
}

var (
	metricsOnce sync.Once
	theMetrics  *metrics
)

func newMetrics() *metrics {
	const ns, sub = "caddy", "signed_cookies"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	return &metrics{
		issued:   counter("issued_total", "New visitor IDs issued."),
		verified: counter("verified_total", "Managed cookies (visitor cookie included) that verified."),
		resigned: counter("resigned_total", "Visitor cookies re-signed with the same ID (refresh or key rotation)."),
		signed:   counter("signed_total", "Upstream Set-Cookie values signed or encrypted."),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "invalid_total",
			Help: "Request cookies not forwarded, by reason."}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dropped_total",
			Help: "Upstream Set-Cookie lines not sent, by reason."}, []string{"reason"}),
		adopted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "adopted_total",
			Help: "Plain values accepted during a rollout (adopt, unwrap) and nginx userid IDs kept, by configured cookie name or glob."}, []string{"cookie"}),
		keyring: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "keyring_errors_total",
			Help: "Storage key ring operations that failed, by operation (read, lock, store); the keys in memory stay in use and the next re-read retries."}, []string{"op"}),
		flaskKeys: counter("flask_key_mismatch_total", "Times a flask_session handler saw 10 Flask sessions in a row fail their signature with none valid: its secret_key or salt is most likely not the app's. Logged as an error, at most every 5 minutes per handler."),
	}
}

func registerMetrics(reg *prometheus.Registry) (*metrics, error) {
	metricsOnce.Do(func() { theMetrics = newMetrics() })
	if reg == nil {
		return theMetrics, nil
	}
	m := theMetrics
	for _, c := range []prometheus.Collector{m.issued, m.verified, m.resigned, m.signed, m.invalid, m.dropped, m.adopted, m.keyring, m.flaskKeys} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

// countKeyringError counts a storage operation of the key ring that failed (op: read, lock,
// store). The rings outlive configs, so it counts on the process's metrics, not a handler's.
func countKeyringError(op string) {
	m, _ := registerMetrics(nil)
	m.keyring.WithLabelValues(op).Inc()
}

// report counts and logs what a pass did. forwarded is the Cookie header the upstream got.
func (h *Handler) report(rp *engine.Report, forwarded []string) {
	m := h.metrics
	if h.flaskWatch != nil {
		h.watchFlask(rp, forwarded)
	}
	if rp.Verified > 0 {
		m.verified.Add(float64(rp.Verified))
	}
	if rp.Issued > 0 {
		m.issued.Add(float64(rp.Issued))
	}
	if rp.Resigned > 0 {
		m.resigned.Add(float64(rp.Resigned))
	}
	if rp.Signed > 0 {
		m.signed.Add(float64(rp.Signed))
	}
	for _, a := range rp.Adopted {
		m.adopted.WithLabelValues(a.Cookie).Add(float64(a.Count))
	}
	if rp.SecureOnPlain != "" {
		h.warnSecureOnPlain(rp.SecureOnPlain)
	}
	if len(rp.Events) == 0 && rp.Unlisted == 0 {
		return // nothing was dropped (the counts below are all zero)
	}
	for _, r := range engine.Reasons() {
		if n := rp.Invalid[r]; n > 0 {
			m.invalid.WithLabelValues(r.String()).Add(float64(n))
		}
		if n := rp.Dropped[r]; n > 0 {
			m.dropped.WithLabelValues(r.String()).Add(float64(n))
		}
	}
	for _, e := range rp.Events {
		h.logEvent(e, rp.Rejected)
	}
	if rp.Unlisted > 0 && h.allowWarning() {
		if c := h.logger.Check(zapcore.WarnLevel, "more cookies dropped"); c != nil {
			c.Write(zap.Int("count", rp.Unlisted))
		}
	}
}

func (h *Handler) logEvent(e engine.Event, rejected bool) {
	msg, level := "invalid cookie dropped", zapcore.WarnLevel
	switch {
	case e.Reason == engine.Adopted:
		msg, level = "plain cookie adopted", zapcore.DebugLevel
	case rejected && !e.Response:
		msg = "invalid cookie: request rejected"
	case e.Noise:
		msg, level = "unparsable cookie pair dropped", zapcore.DebugLevel
	case e.Response:
		msg = "Set-Cookie dropped"
	}
	c := h.logger.Check(level, msg)
	if c == nil || level >= zapcore.WarnLevel && !h.allowWarning() {
		return
	}
	fields := []zap.Field{zap.String("cookie", e.Name), zap.String("reason", e.Reason.String())}
	if n := h.warn.suppressed.Swap(0); n > 0 {
		fields = append(fields, zap.Int64("suppressed_before", n))
	}
	c.Write(fields...)
}

// Each handler's warnings about requests are bounded: a burst, then a steady rate. The lines
// held back are counted and reported with the next one written.
const (
	warningRate  = 10 // lines per second
	warningBurst = 100
)

// warner bounds one handler's warnings about requests.
type warner struct {
	limit      *rate.Limiter
	suppressed atomic.Int64 // warnings held back since the last one written
	once       sync.Map     // cookie name → struct{}: warned about once
	onceCount  atomic.Int64
}

func (h *Handler) allowWarning() bool {
	if h.warn.limit.AllowN(h.now(), 1) {
		return true
	}
	h.warn.suppressed.Add(1)
	return false
}

// maxWarnedOnce bounds the cookie names a handler remembers having warned about.
const maxWarnedOnce = 64

// warnSecureOnPlain says, once per cookie name, that the module set a cookie with the Secure
// attribute (or one that needs it) on a plain-HTTP request: only at runtime can the module
// tell whether TLS ends at a proxy in front of Caddy.
func (h *Handler) warnSecureOnPlain(name string) {
	w := h.warn
	if _, seen := w.once.Load(name); seen || w.onceCount.Load() >= maxWarnedOnce {
		return
	}
	if _, seen := w.once.LoadOrStore(name, struct{}{}); seen {
		return
	}
	w.onceCount.Add(1)
	h.logger.Warn("a cookie that needs the Secure attribute, set on a response to a plain-HTTP request: browsers (other than on localhost) refuse it; serve the site over HTTPS, or list the TLS-terminating proxy in front of Caddy in trusted_proxies",
		zap.String("cookie", name))
}

// A flask_session whose secret_key or salt is not the app's fails every session, and the only
// sign, one bad_mac warning per request, reads like an attack; with on_invalid drop it logs
// every user out. So a run of sessions failing their signature with none valid between them
// is an error naming the keys, once per interval, and a metric. A run, not a ratio: forged
// sessions among valid ones break it, and a site with few logins still reaches it.
const (
	flaskAlarmRun   = 10              // sessions failing in a row, none valid between
	flaskAlarmEvery = 5 * time.Minute // at most one error line per handler in this time
)

// flaskWatch follows one handler's Flask sessions.
type flaskWatch struct {
	name      string       // the session cookie
	run       atomic.Int64 // sessions failing their signature since the last valid one
	lastAlarm atomic.Int64 // when the error was last logged, Unix nanoseconds; 0: never
}

// watchFlask counts a session failing its signature, or ends the run when one verified
// (it reached the upstream with no event against it).
func (h *Handler) watchFlask(rp *engine.Report, forwarded []string) {
	fw := h.flaskWatch
	if !slices.ContainsFunc(rp.Events, func(e engine.Event) bool {
		return !e.Response && e.Reason == engine.BadMAC && e.Name == fw.name
	}) {
		if fw.run.Load() > 0 && holdsCookie(forwarded, fw.name) {
			fw.run.Store(0)
		}
		return
	}
	n := fw.run.Add(1)
	if n < flaskAlarmRun {
		return
	}
	now, last := h.now().UnixNano(), fw.lastAlarm.Load()
	if last != 0 && now-last < int64(flaskAlarmEvery) || !fw.lastAlarm.CompareAndSwap(last, now) {
		return
	}
	h.metrics.flaskKeys.Inc()
	f := h.FlaskSession
	h.logger.Error("every Flask session fails its signature: flask_session's secret_key or salt is not the app's (Flask's SECRET_KEY, and its session salt, \"cookie-session\" unless the app changed it); "+
		"with on_invalid drop every user is logged out at each request: use on_invalid pass until this stops",
		zap.String("cookie", fw.name), zap.Int64("failed_in_a_row", n), zap.String("salt", f.Salt), zap.String("on_invalid", f.OnInvalid))
}

// holdsCookie reports whether a Cookie header holds a pair of that name.
func holdsCookie(header []string, name string) bool {
	for _, line := range header {
		for pair := range strings.SplitSeq(line, ";") {
			if n, _, ok := strings.Cut(strings.TrimSpace(pair), "="); ok && n == name {
				return true
			}
		}
	}
	return false
}
