// The configs the old release runs, and the test-only secrets they use.

package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// plan is a config and the requests made to it.
type plan struct {
	name, adapter, covers string
	text                  string // {{NAME}} is the secret labelled NAME
	env                   map[string]string
	secrets               []string
	realm                 string
	ringPath              string // the storage key ring, under {$COMPAT_STORAGE}; "" with secrets
	weak                  string
	weakAt                int
	visitor               *visitorPlan
	sets                  []string // Set-Cookie lines the upstream sends on setPath (default /set)
	setPath               string
	plain                 bool // the old release left the sets plain (a handler it never ran)
	sign, encrypt         []string
	maxAge                time.Duration
	rotated               bool     // visit and set again once the ring rotated
	under                 []string // configs this one's cookies must also verify under
	noCookies             bool     // loaded and run to show the old release took it
}

type visitorPlan struct {
	name    string
	encrypt bool
	maxAge  time.Duration
	header  string // the header the upstream reads the ID from; "": from its Cookie header
	cookie  string // Cookie header of the issuing request (a consent cookie)
}

const (
	day       = 24 * time.Hour
	storageOf = "{$COMPAT_STORAGE}"
)

const globals = `{
	admin {$COMPAT_ADMIN}
	storage file_system {$COMPAT_STORAGE}
	auto_https off
	persist_config off
	log {
		level {$COMPAT_LOG_LEVEL}
	}
}

`

func site(body string) string {
	return globals + "http://127.0.0.1:{$COMPAT_PORT} {\n\tbind 127.0.0.1\n" + body + "\treverse_proxy {$COMPAT_UPSTREAM}\n}\n"
}

func jsonConfig(handler string) string {
	return `{
	"admin": {"listen": "{$COMPAT_ADMIN}", "config": {"persist": false}},
	"storage": {"module": "file_system", "root": "{$COMPAT_STORAGE}"},
	"logging": {"logs": {"default": {"level": "{$COMPAT_LOG_LEVEL}"}}},
	"apps": {"http": {"servers": {"compat": {
		"listen": ["127.0.0.1:{$COMPAT_PORT}"],
		"automatic_https": {"disable": true},
		"routes": [{"handle": [
			` + handler + `,
			{"handler": "reverse_proxy", "upstreams": [{"dial": "{$COMPAT_UPSTREAM}"}]}
		]}]
	}}}}
}
`
}

var login = []string{"session=alice; Path=/; HttpOnly; SameSite=Lax", "cart=3-apples; Path=/"}

// longValue is n bytes of text, the same on every run.
func longValue(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[(i*7+i/38)%len(alphabet)]
	}
	return string(b)
}

func weakPlans() []plan {
	var ps []plan
	for _, kind := range []string{"hex", "passphrase", "zeros", "sequence", "long"} {
		w := "weak-" + kind
		body := "\tsigned_cookies {\n\t\tsecret %s\n\t\ttrack\n\t\tsign session\n\t}\n"
		vp := &visitorPlan{name: "vid", maxAge: 365 * day, header: "X-Visitor-Id"}
		ps = append(ps, plan{
			name: w, adapter: "caddyfile", covers: "a secret the old release accepted and later checks refuse (" + kind + "), first: it signs",
			text: site(fmt.Sprintf(body, "{{"+w+"}}")), secrets: []string{w}, weak: kind, weakAt: 1,
			visitor: vp, sets: login[:1], sign: []string{"session"}, maxAge: 400 * day, under: []string{w + "-second"},
		}, plan{
			name: w + "-second", adapter: "caddyfile", covers: "the same " + kind + " secret second, after a strong one: it only verifies",
			text: site(fmt.Sprintf(body, "{{strong-for-weak}} {{"+w+"}}")), secrets: []string{"strong-for-weak", w}, weak: kind, weakAt: 2,
			visitor: vp, sets: login[:1], sign: []string{"session"}, maxAge: 400 * day,
		})
	}
	return ps
}

func plans() []plan {
	trackOptions := func(secrets string) string {
		return site(`	signed_cookies {
		secret ` + secrets + `
		track uid {
			max_age 30d
			refresh 1d
			domain 127.0.0.1
			path /
			header X-Uid
			forward strip
			secure on
			http_only off
			same_site strict
			partitioned
			honor_gpc
			consent consent=yes
			when not header User-Agent *bot*
		}
		sign session csrf_token
		encrypt cart prefs_*
		max_age 30d
		on_invalid reject
	}
`)
	}
	uid := &visitorPlan{name: "uid", maxAge: 30 * day, header: "X-Uid", cookie: "consent=yes"}
	trackSets := []string{"session=alice; Path=/; HttpOnly", "csrf_token=tok-123; Path=/", "cart=3-apples; Path=/", "prefs_lang=en; Path=/; Max-Age=86400"}
	ps := []plan{{
		name: "defaults", adapter: "caddyfile",
		covers: "signed_cookies alone: the visitor cookie with every default, signed with the storage key ring it created in Caddy's storage",
		text:   site("\tsigned_cookies\n"), ringPath: "signed_cookies/keyring.json",
		visitor: &visitorPlan{name: "vid", maxAge: 365 * day, header: "X-Visitor-Id"}, maxAge: 400 * day,
	}, {
		name: "ring-rotating", adapter: "caddyfile",
		covers: "the storage key ring in a storage of its own (storage file_system), a realm, rotation every 4s: cookies signed with an older and a newer ring secret, and a ring of several secrets",
		text: site(`	signed_cookies {
		realm ring-realm
		rotate 4s
		check_interval 1s
		storage file_system {
			root ` + storageOf + `/ring
		}
		track
		sign session
		encrypt cart
	}
`), realm: "ring-realm", ringPath: "ring/signed_cookies/keyring.json",
		visitor: &visitorPlan{name: "vid", maxAge: 365 * day, header: "X-Visitor-Id"}, sets: login,
		sign: []string{"session"}, encrypt: []string{"cart"}, maxAge: 400 * day, rotated: true,
	}, {
		name: "track-options", adapter: "caddyfile",
		covers: "every track option, sign and encrypt with names and a glob, max_age, on_invalid reject, one configured secret",
		text:   trackOptions("{{A}}"), secrets: []string{"A"}, visitor: uid, sets: trackSets,
		sign: []string{"session", "csrf_token"}, encrypt: []string{"cart", "prefs_*"}, maxAge: 30 * day,
		under: []string{"track-options-rotated"},
	}, {
		name: "track-options-rotated", adapter: "caddyfile",
		covers: "track-options after a rotation of configured secrets: a new secret signs, the old one verifies",
		text:   trackOptions("{{B}} {{A}}"), secrets: []string{"B", "A"}, visitor: uid, sets: trackSets,
		sign: []string{"session", "csrf_token"}, encrypt: []string{"cart", "prefs_*"}, maxAge: 30 * day,
	}, {
		name: "encrypted-realm", adapter: "caddyfile",
		covers: "two configured secrets, a realm, the visitor ID encrypted and read from the Cookie header (header off), a sign glob",
		text: site(`	signed_cookies {
		secret {{D}} {{E}}
		realm shop
		track {
			encrypt
			header off
		}
		sign sess_*
		encrypt cart
	}
`), secrets: []string{"D", "E"}, realm: "shop",
		visitor: &visitorPlan{name: "vid", encrypt: true, maxAge: 365 * day},
		sets:    []string{"sess_id=42; Path=/", "sess_theme=dark; Path=/", "cart=3-apples; Path=/"},
		sign:    []string{"sess_*"}, encrypt: []string{"cart"}, maxAge: 400 * day,
	}, {
		name: "short-lived", adapter: "caddyfile",
		covers: "max_age 1h for the visitor and upstream cookies: past their age at any later test, which must then find them expired",
		text: site(`	signed_cookies {
		secret {{F}}
		track {
			max_age 1h
			refresh 1h
		}
		sign session
		max_age 1h
	}
`), secrets: []string{"F"}, visitor: &visitorPlan{name: "vid", maxAge: time.Hour, header: "X-Visitor-Id"},
		sets: login[:1], sign: []string{"session"}, maxAge: time.Hour,
	}, {
		name: "values", adapter: "caddyfile",
		covers: "upstream values of every shape: '=' and quotes, UTF-8, a space before '=', commas, JSON, near the 4096-byte limit signed and encrypted; no visitor cookie",
		text: site(`	signed_cookies {
		secret {{G}}
		sign v_*
		encrypt e_*
	}
`), secrets: []string{"G"},
		sets: []string{"v_plain=hello; Path=/", "v_eq=a=b==; Path=/", `v_quoted="quoted"; Path=/`, "v_utf8=José; Path=/",
			"v_space=dark session=admin; Path=/", "v_comma=a,b; Path=/", `v_json={"a":1}; Path=/`,
			"v_long=" + longValue(2200) + "; Path=/", "e_long=" + longValue(2150) + "; Path=/", "e_plain=secret-value; Path=/"},
		sign: []string{"v_*"}, encrypt: []string{"e_*"}, maxAge: 400 * day,
	}, {
		name: "placeholders", adapter: "json",
		covers: "the JSON form of the production example: secrets and realm from {env.*}, __Host-vid, when, sign and encrypt with a glob, max_age 30d",
		text: jsonConfig(`{
				"handler": "signed_cookies",
				"secrets": ["{env.COMPAT_SECRET_NEW}", "{env.COMPAT_SECRET_OLD}"],
				"realm": "{env.COMPAT_REALM}",
				"track": {
					"name": "__Host-vid",
					"max_age": "365d",
					"refresh": "7d",
					"same_site": "lax",
					"honor_gpc": true,
					"when": {"not": [{"header": {"User-Agent": ["*bot*"]}}]}
				},
				"sign": ["session", "csrf_token"],
				"encrypt": ["cart", "prefs_*"],
				"max_age": "30d",
				"on_invalid": "drop"
			}`),
		env:     map[string]string{"COMPAT_SECRET_NEW": "{{H}}", "COMPAT_SECRET_OLD": "{{I}}", "COMPAT_REALM": "app.example.com"},
		secrets: []string{"H", "I"}, realm: "app.example.com",
		visitor: &visitorPlan{name: "__Host-vid", maxAge: 365 * day, header: "X-Visitor-Id"}, sets: trackSets,
		sign: []string{"session", "csrf_token"}, encrypt: []string{"cart", "prefs_*"}, maxAge: 30 * day,
	}, {
		name: "ring-json", adapter: "json",
		covers: "the JSON form with the storage key ring in its own storage, durations as nanoseconds, a renamed visitor cookie stripped from the Cookie header",
		text: jsonConfig(`{
				"handler": "signed_cookies",
				"rotate": 2592000000000000,
				"check_interval": "1m",
				"storage": {"module": "file_system", "root": "` + storageOf + `/json-ring"},
				"track": {"name": "jvid", "max_age": 31536000000000000, "forward": "strip", "header": "X-Jvid"},
				"sign": ["jsession"],
				"max_age": "400d"
			}`), ringPath: "json-ring/signed_cookies/keyring.json",
		visitor: &visitorPlan{name: "jvid", maxAge: 365 * day, header: "X-Jvid"}, sets: []string{"jsession=alice; Path=/"},
		sign: []string{"jsession"}, maxAge: 400 * day,
	}, {
		name: "header-off-uppercase", adapter: "json",
		covers: `track "header": "OFF": the old release compared "off" with case, and sent the ID in a header named Off`,
		text: jsonConfig(`{
				"handler": "signed_cookies",
				"secrets": ["{{J}}"],
				"track": {"header": "OFF"}
			}`), secrets: []string{"J"},
		visitor: &visitorPlan{name: "vid", maxAge: 365 * day, header: "Off"}, maxAge: 400 * day,
	}, {
		name: "header-trailer", adapter: "caddyfile",
		covers: "track { header Trailer }: a hop-by-hop field, so the upstream never got the ID; the visitor cookie is signed as usual",
		text: site(`	signed_cookies {
		secret {{A}}
		track {
			header Trailer
		}
	}
`), secrets: []string{"A"}, visitor: &visitorPlan{name: "vid", maxAge: 365 * day, header: "Trailer"}, maxAge: 400 * day,
	}, {
		name: "after-reverse-proxy", adapter: "caddyfile", noCookies: true,
		covers: "a handler after reverse_proxy in one route: it never ran, the upstream's cookies left plain",
		text: globals + `http://127.0.0.1:{$COMPAT_PORT} {
	bind 127.0.0.1
	route {
		reverse_proxy {$COMPAT_UPSTREAM}
		signed_cookies {
			secret {{A}}
			sign session
		}
	}
}
`, secrets: []string{"A"}, maxAge: 400 * day,
	}, {
		name: "two-handlers-one-name", adapter: "caddyfile", noCookies: true,
		covers: "two handlers on one request path managing session differently (sign, then encrypt under /app/)",
		text: site(`	signed_cookies {
		secret {{A}}
		sign session
	}
	handle /app/* {
		signed_cookies {
			secret {{A}}
			encrypt session
		}
		reverse_proxy {$COMPAT_UPSTREAM}
	}
`), secrets: []string{"A"}, maxAge: 400 * day,
	}, {
		name: "nested-handlers", adapter: "caddyfile",
		covers: "a handler inside handle under a site-wide one: the old release ran only the first handler a request met, so under /app/ session left plain and came back plain",
		text: site(`	signed_cookies {
		secret {{A}}
	}
	handle /app/* {
		signed_cookies {
			secret {{A}}
			sign session
		}
		reverse_proxy {$COMPAT_UPSTREAM}
	}
`), secrets: []string{"A"}, visitor: &visitorPlan{name: "vid", maxAge: 365 * day, header: "X-Visitor-Id"},
		sets: login[:1], setPath: "/app/set", plain: true, sign: []string{"session"}, maxAge: 400 * day,
	}, {
		name: "sign-encrypt-overlap", adapter: "caddyfile",
		covers: "sign sess_* and encrypt sess_cart in one handler: the old release took the first rule that matched, encrypt before sign, so it encrypted sess_cart and signed the other sess_* names",
		text: site(`	signed_cookies {
		secret {{A}}
		sign sess_*
		encrypt sess_cart
	}
`), secrets: []string{"A"}, sets: []string{"sess_cart=3-apples; Path=/", "sess_id=42; Path=/"},
		sign: []string{"sess_*"}, encrypt: []string{"sess_cart"}, maxAge: 400 * day,
	}, {
		name: "lookalike-names", adapter: "caddyfile",
		covers: "sign Session and encrypt session in one handler: two names an upstream may read as one",
		text: site(`	signed_cookies {
		secret {{A}}
		sign Session
		encrypt session
	}
`), secrets: []string{"A"}, sets: []string{"Session=bob; Path=/", "session=alice; Path=/"},
		sign: []string{"Session"}, encrypt: []string{"session"}, maxAge: 400 * day,
	}, {
		name: "errors-proxied", adapter: "caddyfile",
		covers: "handle_errors answering with reverse_proxy and no signed_cookies of its own: on an error the app's managed cookies left plain",
		text: site(`	signed_cookies {
		secret {{A}}
		sign session
	}
	handle_errors {
		reverse_proxy {$COMPAT_UPSTREAM}
	}
`), secrets: []string{"A"}, sets: login[:1], sign: []string{"session"}, maxAge: 400 * day,
	}, {
		name: "two-visitor-cookies", adapter: "caddyfile", noCookies: true,
		covers: "two handlers on one request path issuing different visitor cookies (vid everywhere, shopper under /shop/)",
		text: site(`	signed_cookies {
		secret {{A}}
	}
	handle /shop/* {
		signed_cookies {
			secret {{A}}
			track shopper
		}
		reverse_proxy {$COMPAT_UPSTREAM}
	}
`), secrets: []string{"A"}, maxAge: 400 * day,
	}}
	return append(ps, weakPlans()...)
}

// secretsFor makes the test-only secrets: random ones as `head -c32 /dev/urandom | base64`
// makes them, and the weak kinds the old release accepted.
func secretsFor() map[string]string {
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	s := map[string]string{}
	for _, l := range []string{"A", "B", "D", "E", "F", "G", "H", "I", "J", "strong-for-weak"} {
		s[l] = base64.StdEncoding.EncodeToString(random(32))
	}
	s["weak-hex"] = base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(random(32)))) // openssl rand -hex 32 | base64
	s["weak-passphrase"] = base64.StdEncoding.EncodeToString([]byte("correct horse battery staple, for signed cookies"))
	s["weak-zeros"] = base64.StdEncoding.EncodeToString(make([]byte, 32))
	seq := make([]byte, 32)
	for i := range seq {
		seq[i] = byte(i)
	}
	s["weak-sequence"] = base64.StdEncoding.EncodeToString(seq)
	s["weak-long"] = base64.StdEncoding.EncodeToString(random(1100))
	return s
}

func fill(text string, secrets map[string]string) string {
	for l, v := range secrets {
		text = strings.ReplaceAll(text, "{{"+l+"}}", v)
	}
	if strings.Contains(text, "{{") {
		fatalf("unfilled secret in %s", text)
	}
	return text
}
