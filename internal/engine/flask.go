// Flask's own session cookie, verified at the edge: a service behind the same Caddy learns
// who is logged in to the old app from request headers, and a forged session never reaches
// either.

package engine

import (
	"net/http"
	"strings"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/itsdangerous"
)

// maxExposedSize bounds what the exposed fields of one session put in headers.
const maxExposedSize = 4096

type flask struct {
	*Flask
	headerNorm string   // the header prefix folded (normalizeHeaderName)
	headers    []string // the header of each exposed key
}

func newFlask(f *Flask) *flask {
	fl := &flask{Flask: f}
	if f.HeaderPrefix != "" {
		fl.headerNorm = normalizeHeaderName(f.HeaderPrefix)
		for _, k := range f.Expose {
			fl.headers = append(fl.headers, http.CanonicalHeaderKey(f.HeaderPrefix+strings.ReplaceAll(k, "_", "-")))
		}
	}
	return fl
}

// Field is an exposed field of a verified Flask session.
type Field struct{ Key, Value string }

// flaskPair handles a copy of the Flask session cookie: the first that verifies reaches the
// upstream untouched and its exposed fields are kept for the headers; one that does not goes
// as the policy says (with pass, forwarded through the same gate as any pair, and only while
// no valid copy is found).
func (p *Policy) flaskPair(res *result, r *rule, pr pair, now int64) {
	f, name := p.flask, pr.name(res)
	if res.macs+r.codec.KeyCount() > maxMACs || res.decodes >= maxMACs {
		res.drop(pr.browser(res), int(pr.rule), OverBudget)
		res.flaskUnread = true
		return
	}
	res.decodes++
	d, err := r.codec.AppendDecodeAt(res.joined[:0], name, pr.value(res), now)
	res.joined = d.Value
	var fields itsdangerous.Fields
	if err == nil {
		fields, err = itsdangerous.SessionFields(d.Value)
		if err != nil {
			err = cookie.ErrMalformed
		}
	}
	if err != nil {
		res.macs += r.codec.KeyCount()
		if f.OnInvalid == FlaskPass {
			if len(res.passed) > 0 { // one copy reaches the app, as with every managed name
				res.drop(pr.browser(res), int(pr.rule), Duplicate)
				return
			}
			// the app decides; nothing is exposed, but it is counted
			res.passed = append(res.passed, dropped{name: name, rule: int(pr.rule), reason: decodeReason(err)})
			res.all = append(res.all, pr)
			return
		}
		res.drop(pr.browser(res), int(pr.rule), decodeReason(err))
		return
	}
	res.macs += d.Key + 1
	if p.revoked(r, name, nil, fields, d.Signed) {
		// dropped whatever on_invalid says: passed, the app would take it as valid
		res.drop(pr.browser(res), int(pr.rule), Revoked)
		return
	}
	// passed copies before it give way to the valid one
	for i := range res.all {
		if q := &res.all[i]; q.rule == pr.rule && q.fate == fateForward {
			q.fate = fateDrop
		}
	}
	res.all = append(res.all, pr)
	res.flaskAt = len(res.all)
	res.found = append(res.found, found{name: name, rule: int(pr.rule), Decoded: cookie.Decoded{Signed: d.Signed, Key: d.Key}})
	size := 0
	for _, k := range f.Expose {
		v, ok := fields.Get(k)
		if !ok || !headerSafe(v) || size+len(v) > maxExposedSize {
			continue
		}
		size += len(v)
		res.exposed = append(res.exposed, Field{Key: k, Value: v})
	}
}

// headerSafe reports whether a value can stand in a request header as it is.
func headerSafe(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// exposeFlask sets the headers of the exposed fields and keeps them for the placeholders.
func (ps *Pass) exposeFlask(r *http.Request) {
	f := ps.p.flask
	ps.f.flaskRan = true
	if at := ps.res.flaskAt; at == 0 || ps.res.all[at-1].fate == fateDrop {
		return // none verified, or held back for want of consent: nothing to expose
	}
	for _, fd := range ps.res.exposed {
		if f.headerNorm != "" {
			for i, k := range f.Expose {
				if k == fd.Key {
					r.Header[f.headers[i]] = []string{fd.Value}
				}
			}
		}
		ps.f.flask = append(ps.f.flask, fd)
	}
}
