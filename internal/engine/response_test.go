package engine

import (
	"net/http"
	"slices"
	"testing"
)

func TestEnsurePrivate(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   http.Header
		want http.Header // the whole header after
	}{
		{"no Cache-Control", http.Header{},
			http.Header{"Cache-Control": {"private"}}},
		{"empty Cache-Control", http.Header{"Cache-Control": {""}},
			http.Header{"Cache-Control": {"private"}}},
		{"public and s-maxage go, any case", http.Header{"Cache-Control": {"Public, S-MaxAge=600, max-age=60"}},
			http.Header{"Cache-Control": {"max-age=60, private"}}},
		{"several lines", http.Header{"Cache-Control": {"public", "max-age=60,  must-revalidate"}},
			http.Header{"Cache-Control": {"max-age=60, must-revalidate, private"}}},
		{"private already", http.Header{"Cache-Control": {"max-age=60, Private"}},
			http.Header{"Cache-Control": {"max-age=60, Private"}}},
		{"no-store already, on another line", http.Header{"Cache-Control": {"public, max-age=60", "no-store"}},
			http.Header{"Cache-Control": {"public, max-age=60", "no-store"}}},
		{"qualified private lets the rest be stored: a bare one replaces it", http.Header{"Cache-Control": {`public, private="X-Foo, X-Bar", max-age=60`}},
			http.Header{"Cache-Control": {"max-age=60, private"}}},
		{"other directives kept as written", http.Header{"Cache-Control": {`no-cache="Set-Cookie", max-age=0, stale-if-error=60`}},
			http.Header{"Cache-Control": {`no-cache="Set-Cookie", max-age=0, stale-if-error=60, private`}}},
		{"RFC 9213 targeted fields", http.Header{
			"Cdn-Cache-Control":            {"max-age=600"},
			"Cloudflare-Cdn-Cache-Control": {"public, s-maxage=3600"},
			"vendor-cache-control":         {"private"}, // not canonical, private already
		}, http.Header{
			"Cache-Control":                {"private"},
			"Cdn-Cache-Control":            {"max-age=600, private"},
			"Cloudflare-Cdn-Cache-Control": {"private"},
			"vendor-cache-control":         {"private"},
		}},
		{"surrogate fields get no-store for their lifetimes", http.Header{
			"Cache-Control":     {"no-store"},
			"Surrogate-Control": {`max-age=3600, content="ESI/1.0"`},
			"Edge-Control":      {"!no-store, cache-maxage=1h, downstream-ttl=60"},
		}, http.Header{
			"Cache-Control":     {"no-store"},
			"Surrogate-Control": {`content="ESI/1.0", no-store`},
			"Edge-Control":      {"downstream-ttl=60, no-store"},
		}},
		{"no-store once", http.Header{"Surrogate-Control": {"no-store, No-Store"}},
			http.Header{"Cache-Control": {"private"}, "Surrogate-Control": {"no-store"}}},
		{"X-Accel-Expires", http.Header{"X-Accel-Expires": {"@1700000000"}, "x-accel-expires": {"600"}},
			http.Header{"Cache-Control": {"private"}, "X-Accel-Expires": {"0"}, "x-accel-expires": {"0"}}},
		{"look-alike names untouched", http.Header{
			"X-Cache-Control-Debug": {"public"},
			"-Cache-Control":        {"public"},
			"Surrogate-Capability":  {"abc=ESI/1.0"},
		}, http.Header{
			"Cache-Control":         {"private"},
			"X-Cache-Control-Debug": {"public"},
			"-Cache-Control":        {"public"},
			"Surrogate-Capability":  {"abc=ESI/1.0"},
		}},
	} {
		h := tc.in.Clone()
		ensurePrivate(h)
		if !sameHeader(h, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, h, tc.want)
		}
	}
}

func TestDirectiveRewrite(t *testing.T) {
	dr := directiveRewrite{add: "x", enough: []string{"y"}, drop: []string{"a", "b"}}
	for _, tc := range []struct {
		name string
		in   []string // nil: absent
		want []string
	}{
		{"absent: add alone", nil, []string{"x"}},
		{"drop by name, with or without a value", []string{"A=1, keep=2, b , c"}, []string{"keep=2, c, x"}},
		{"a name that starts like a dropped one stays", []string{"ab, a-b=1"}, []string{"ab, a-b=1, x"}},
		{"enough: unchanged, even after drops", []string{"a, keep", "Y"}, []string{"a, keep", "Y"}},
		{"a qualified one is not enough", []string{`a, keep, y="p, q"`}, []string{`keep, y="p, q", x`}},
		{"empty directives go", []string{" , ,keep,"}, []string{"keep, x"}},
		{"a qualified add gives way to the bare one", []string{`X="p, q", keep`}, []string{"keep, x"}},
		{"an escaped quote stays quoted", []string{`z="p\", a", b`}, []string{`z="p\", a", x`}},
		{"an open quote: the rest goes", []string{`keep, z="p, a`, "c"}, []string{"keep, c, x"}},
	} {
		h := http.Header{}
		if tc.in != nil {
			h["F"] = slices.Clone(tc.in)
		}
		dr.apply(h, "F")
		if !slices.Equal(h["F"], tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, h["F"], tc.want)
		}
	}
}

func sameHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}
