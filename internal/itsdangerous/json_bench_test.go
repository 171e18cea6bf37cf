package itsdangerous

import (
	"bytes"
	"encoding/json"
	"testing"
)

// stdlibSession is the alternative to the hand-written parser: encoding/json with UseNumber,
// then Flask's untagging walked over the tree it builds.
func stdlibSession(js []byte) (map[string]any, bool) {
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil || d.More() {
		return nil, false
	}
	var walk func(v any) (any, bool)
	walk = func(v any) (any, bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				y, ok := walk(x)
				if !ok {
					return nil, false
				}
				v[k] = y
			}
			return flaskUntag(v)
		case []any:
			for i, x := range v {
				y, ok := walk(x)
				if !ok {
					return nil, false
				}
				v[i] = y
			}
		}
		return v, true
	}
	u, ok := walk(v)
	m, isMap := u.(map[string]any)
	return m, ok && isMap
}

// BenchmarkFlaskSessionJSON reads a Flask session's JSON with the hand-written parser and with
// encoding/json plus an untagging walk, for a small session and a tagged, nested one:
//
//	go test -run XXX -bench FlaskSessionJSON -benchmem ./internal/itsdangerous
//
// Measured (2026-12-07, 3 runs): small 0.52-0.59 µs, 9 allocs, against 1.3-2.0 µs, 14; tagged
// 3.2-4.0 µs, 49 allocs, against 7.4-8.5 µs, 56. Besides the cost, encoding/json is not Python's json.loads: it refuses NaN and Infinity (which
// Flask writes for float('nan')) and reads a lone surrogate escape as U+FFFD, so the parity
// tests (TestDangerousFlaskSessions, TestDangerousFlaskCrafted, against Python) decide for the hand-written parser whatever the numbers.
func BenchmarkFlaskSessionJSON(b *testing.B) {
	for _, c := range []struct{ name, js string }{
		{"small", `{"user":"alice","role":"member"}`},
		{"tagged", `{"_fresh":true,"_id":"4f2b…","user_id":"42","csrf_token":"0123456789abcdef0123456789abcdef01234567",` +
			`"cart":{" t":[1,2,3]},"seen":{" d":"Mon, 07 Dec 2026 04:00:00 GMT"},"prefs":{"theme":"dark","langs":["en","fr"]}}`},
	} {
		js := []byte(c.js)
		if _, err := flaskParseSession(js); err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		if _, ok := stdlibSession(js); !ok {
			b.Fatalf("%s: encoding/json refused it", c.name)
		}
		b.Run(c.name+"/hand", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := flaskParseSession(js); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := stdlibSession(js); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}
