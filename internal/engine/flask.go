// Flask's own session cookie, verified at the edge: a service behind the same Caddy learns
// who is logged in to the old app from request headers, and a forged session never reaches
// either.

package engine

import (
	"net/http"
	"strings"

	"github.com/signedcookies/caddy-signedcookies/cookie"
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

// flaskPair handles the Flask session cookie: verified, it reaches the upstream untouched and
// its exposed fields are kept for the headers; not, it goes as the policy says.
func (p *Policy) flaskPair(res *result, r *rule, ri int, part, name, value string, now int64) {
	f := p.flask
	if res.flaskSeen {
		res.drop(name, ri, Duplicate)
		return
	}
	if res.macs+r.codec.KeyCount() > maxMACs {
		res.drop(name, ri, OverBudget)
		return
	}
	res.decodes++
	res.flaskSeen = true
	d, err := r.codec.AppendDecodeAt(res.joined[:0], name, value, now)
	res.joined = d.Value
	var fields map[string]string
	if err == nil {
		fields, err = cookie.FlaskSessionFields(d.Value)
		if err != nil {
			err = cookie.ErrMalformed
		}
	}
	if err != nil {
		res.macs += r.codec.KeyCount()
		if f.OnInvalid == FlaskPass {
			res.appendPart(part) // the app decides; nothing is exposed, but it is counted
			res.passed = append(res.passed, dropped{name: name, rule: ri, reason: decodeReason(err)})
			return
		}
		res.drop(name, ri, decodeReason(err))
		return
	}
	res.macs += d.Key + 1
	res.appendPart(part)
	res.found = append(res.found, found{name: name, rule: ri, Decoded: cookie.Decoded{Signed: d.Signed, Key: d.Key}})
	size := 0
	for _, k := range f.Expose {
		v, ok := fields[k]
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
