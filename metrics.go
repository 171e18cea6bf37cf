// Metrics on Caddy's registry: created once per process, registered again on every
// Provision (a config reload gets a fresh registry), never labelled with a value or an ID.
package signedcookies

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	issued   prometheus.Counter
	verified prometheus.Counter
	resigned prometheus.Counter
	signed   prometheus.Counter
	invalid  *prometheus.CounterVec
	dropped  *prometheus.CounterVec
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
	}
}

func registerMetrics(reg *prometheus.Registry) (*metrics, error) {
	metricsOnce.Do(func() { theMetrics = newMetrics() })
	if reg == nil {
		return theMetrics, nil
	}
	m := theMetrics
	for _, c := range []prometheus.Collector{m.issued, m.verified, m.resigned, m.signed, m.invalid, m.dropped} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}
