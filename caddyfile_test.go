package signedcookies

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/caddyfile_adapt")

func TestUnmarshalCaddyfile(t *testing.T) {
	cases := []struct {
		name, input, want, err string
	}{
		{name: "bare directive: the defaults (a visitor cookie) apply at Provision", input: `signed_cookies`, want: `{}`},
		{name: "sign only, no tracking", input: `signed_cookies {
sign session
}`, want: `{"sign":["session"]}`},
		{name: "everything", input: `signed_cookies {
			secret {env.NEW} {file./run/old}
			track __Host-vid {
				max_age 30d
				refresh 1h
				path /
				header X-Visitor
				forward strip
				secure on
				http_only off
				same_site strict
				partitioned
				encrypt
				honor_gpc
				consent cookie_ok=yes
			}
			sign session sess_*
			encrypt cart
			max_age 7d
			on_invalid reject
		}`, want: `{"secrets":["{env.NEW}","{file./run/old}"],"track":{"name":"__Host-vid","max_age":2592000000000000,"refresh":3600000000000,"path":"/","header":"X-Visitor","forward":"strip","secure":"on","http_only":false,"same_site":"strict","partitioned":true,"encrypt":true,"honor_gpc":true,"consent":"cookie_ok=yes"},"sign":["session","sess_*"],"encrypt":["cart"],"max_age":604800000000000,"on_invalid":"reject"}`},
		{name: "storage key ring options", input: `signed_cookies {
			rotate 12h
			check_interval 30s
			storage file_system /var/lib/keys
		}`, want: `{"rotate":43200000000000,"check_interval":30000000000,"storage":{"module":"file_system","root":"/var/lib/keys"}}`},
		{name: "domain", input: `signed_cookies {
track {
domain example.com
}
}`, want: `{"track":{"domain":"example.com"}}`},
		{name: "when matcher", input: `signed_cookies {
track {
when not header User-Agent *bot*
}
}`, want: `{"track":{"when":{"not":[{"header":{"User-Agent":["*bot*"]}}]}}}`},

		{name: "argument on directive", input: `signed_cookies foo`, err: "wrong argument count"},
		{name: "unknown subdirective", input: "signed_cookies {\n sing session\n}", err: `unrecognized subdirective "sing", at Testfile:2`},
		{name: "unknown track subdirective", input: "signed_cookies {\n track {\n maxage 1d\n }\n}", err: `track: unrecognized subdirective "maxage", at Testfile:3`},
		{name: "repeated subdirective", input: "signed_cookies {\n max_age 1d\n max_age 2d\n}", err: `duplicate subdirective "max_age", at Testfile:3`},
		{name: "lists repeat and add up", input: "signed_cookies {\n sign a b\n sign c\n encrypt d\n encrypt e\n secret {env.A}\n secret {env.B}\n}",
			want: `{"secrets":["{env.A}","{env.B}"],"sign":["a","b","c"],"encrypt":["d","e"]}`},
		{name: "keywords in any case", input: "signed_cookies {\n track {\n same_site Lax\n secure AUTO\n forward Plain\n http_only On\n }\n on_invalid Drop\n}",
			want: `{"track":{"forward":"plain","secure":"auto","http_only":true,"same_site":"lax"},"on_invalid":"drop"}`},
		{name: "values checked at adapt", input: "signed_cookies {\n track {\n max_age 500d\n }\n}", err: "track: max_age: 12000h0m0s is not between 1s and 400 days"},
		{name: "literal secret checked at adapt", input: "signed_cookies {\n secret AAAA\n}", err: "secret 1 decodes to 3 bytes"},
		{name: "repeated track subdirective", input: "signed_cookies {\n track {\n path /\n path /a\n }\n}", err: `duplicate subdirective "path"`},
		{name: "secret without value", input: `signed_cookies {
secret
}`, err: "secret: no value"},
		{name: "realm", input: "signed_cookies {\n realm \"shop eu\"\n sign s\n}", want: `{"realm":"shop eu","sign":["s"]}`},
		{name: "realm without value", input: "signed_cookies {\n realm\n}", err: "wrong argument count"},
		{name: "realm with two values", input: "signed_cookies {\n realm a b\n}", err: "wrong argument count"},
		{name: "sign without names", input: `signed_cookies {
sign
}`, err: "wrong argument count"},
		{name: "encrypt without names", input: `signed_cookies {
encrypt
}`, err: "wrong argument count"},
		{name: "bad duration", input: `signed_cookies {
max_age soon
}`, err: `max_age: bad duration "soon"`},
		{name: "negative duration", input: `signed_cookies {
rotate -1h
}`, err: `rotate: duration "-1h" must be positive`},
		{name: "bad on_invalid", input: `signed_cookies {
on_invalid explode
}`, err: `on_invalid: "explode" is not one of drop, reject, at Testfile:2`},
		{name: "bad forward", input: `signed_cookies {
track {
forward maybe
}
}`, err: `track: forward: "maybe" is not one of plain, strip`},
		{name: "bad secure", input: `signed_cookies {
track {
secure yes
}
}`, err: `track: secure: "yes" is not one of auto, on, off`},
		{name: "bad same_site", input: `signed_cookies {
track {
same_site loose
}
}`, err: `track: same_site: "loose" is not one of lax, strict, none`},
		{name: "bad http_only", input: `signed_cookies {
track {
http_only true
}
}`, err: `track: http_only: "true" is not one of on, off`},
		{name: "flag with argument", input: `signed_cookies {
track {
partitioned yes
}
}`, err: "wrong argument count"},
		{name: "two track names", input: `signed_cookies {
track a b
}`, err: "wrong argument count"},
		{name: "path with two args", input: `signed_cookies {
track {
path / /x
}
}`, err: "wrong argument count"},
		{name: "unknown storage", input: `signed_cookies {
storage nowhere
}`, err: "nowhere"},
		{name: "unknown matcher", input: `signed_cookies {
track {
when nosuchmatcher x
}
}`, err: "nosuchmatcher"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(h)
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// Config errors found at load (Provision) name the field.
func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ body, want string }{
		{"track bad;name", "track: name:"},
		{"track {\nmax_age 500d\n}", "track: max_age: 12000h0m0s is not between 1s and 400 days"},
		{"track {\nmax_age 500ms\n}", "track: max_age: 500ms is not between 1s and 400 days"},
		{"track {\nrefresh 2d\nmax_age 1d\n}", "track: refresh: 48h0m0s must be at least 1s and at most max_age"},
		{"track {\nrefresh 10ms\n}", "track: refresh: 10ms must be at least 1s"},
		{"sign a\nmax_age 999ms", "max_age: 999ms is under 1s"},
		{"rotate 1m\ncheck_interval 1m", "rotate: 1m0s must be at least 1s and twice check_interval (1m0s)"},
		{"rotate 100ms\ncheck_interval 10ms", "rotate: 100ms must be at least 1s"},
		{"track {\npath nope\n}", `track: path: "nope" must start with /`},
		{"track {\nheader \"Bad Header\"\n}", "track: header:"},
		{"track {\nheader Cookie\n}", `track: header: "Cookie" cannot carry the visitor ID`},
		{"track __Host-vid {\ndomain example.com\n}", "track: name: a __Host- cookie needs path / and no domain"},
		{"track __Host-vid {\npath /app\n}", "track: name: a __Host- cookie needs path / and no domain"},
		{"track __Host-vid {\nsecure off\n}", "track: secure: a __Host- name requires Secure"},
		{"track __Secure-vid {\nsecure off\n}", "track: secure: a __Secure- name requires Secure"},
		{"track {\nsame_site none\nsecure off\n}", "track: secure: same_site none requires Secure"},
		{"track {\npartitioned\nsecure off\n}", "track: secure: partitioned requires Secure"},
		{"track {\nconsent \"a b\"\n}", "track: consent:"},
		{"sign \"[\"", "sign:"},
		{"sign a\nencrypt a", `sign: "a" is already listed in encrypt`},
		{"track\nsign vid", `track vid and sign vid both claim "vid": a cookie has one rule`},
		{"track\nsign v*", `track vid and sign v* both claim "vid" and "v*"`},
		{"secret " + testSecret + "\nrotate 1d", "rotate, check_interval and storage apply only to the storage key ring"},
		{"sign a\nrealm \"caf\u00e9\"", "realm: byte 4 is not printable ASCII"},
		{"sign a\nrealm " + strings.Repeat("r", 129), "realm: 129 bytes, at most 128"},
		{"sign a\nrealm {env.SC_UNSET_REALM}", "realm: evaluated placeholder {env.SC_UNSET_REALM} is empty"},
		{"sign a\nrealm shop-{system.hostname}", "realm: placeholder {system.hostname} is not allowed"},
		{"sign a\nrealm {time.now.unix}", "realm: placeholder {time.now.unix} is not allowed"},
		{"sign a\nrealm \" shop\"", "realm: begins or ends with a space"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			err := loadCaddyErr(t, "\tsigned_cookies {\n"+tc.body+"\n}\n\trespond ok")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// The JSON config gets the same checks as the Caddyfile, as `caddy validate` shows.
func TestCaddyValidateCLI(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(args string) (string, error) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), runCaddyEnv+"=1", runCaddyEnv+"_ARGS="+args, "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	bad := write("bad.json", `{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[
		{"handler":"signed_cookies","sign":["session"],"on_invalid":"explode"}]}]}}}}}`)
	out, err := run("validate --config " + bad)
	if err == nil || !strings.Contains(out, `on_invalid: \"explode\" is not one of drop, reject`) {
		t.Errorf("caddy validate of a bad on_invalid: err %v, output:\n%s", err, out)
	}
	// An empty handler tracks visitors with the defaults, as the bare Caddyfile directive does.
	empty := write("empty.json", `{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[
		{"handler":"signed_cookies","secrets":["`+testSecret+`"]}]}]}}}}}`)
	out, err = run("validate --config " + empty)
	if err != nil || !strings.Contains(out, "Valid configuration") {
		t.Errorf("caddy validate of an empty handler: err %v, output:\n%s", err, out)
	}
	nanos := write("nanos.json", `{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[
		{"handler":"signed_cookies","secrets":["`+testSecret+`"],"sign":["session"],"max_age":3600}]}]}}}}}`)
	out, err = run("validate --config " + nanos)
	if err == nil || !strings.Contains(out, "max_age: 3.6µs is under 1s") {
		t.Errorf("caddy validate of max_age 3600 (nanoseconds): err %v, output:\n%s", err, out)
	}
	good := write("Caddyfile", "http://127.0.0.1:0 {\n\tsigned_cookies {\n\t\tsecret "+testSecret+"\n\t}\n\trespond ok\n}\n")
	if out, err := run("validate --adapter caddyfile --config " + good); err != nil || !strings.Contains(out, "Valid configuration") {
		t.Errorf("caddy validate of a good Caddyfile: err %v, output:\n%s", err, out)
	}
}

// Golden adapt tests in the style of Caddy's caddyfile_adapt: Caddyfile in, exact JSON out,
// or "error: <message>" for a Caddyfile that must not adapt. Run with -update to rewrite the
// expected JSON after a deliberate change.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(string(raw), "----------\n")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			if msg, isErr := strings.CutPrefix(want, "error: "); isErr {
				_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(in), nil)
				if err == nil || err.Error() != strings.TrimSpace(msg) {
					t.Errorf("adapt error %v, want %q", err, strings.TrimSpace(msg))
				}
				return
			}
			js := adapt(t, in)
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, js, "", "\t"); err != nil {
				t.Fatal(err)
			}
			got := pretty.String() + "\n"
			if *update {
				if err := os.WriteFile(f, []byte(in+"----------\n"+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("adapted JSON differs from %s:\n got:\n%s\nwant:\n%s", f, got, want)
			}
			// What adapts must also provision.
			t.Setenv("SC_GOLDEN_SECRET", testSecret)
			t.Setenv("XDG_DATA_HOME", t.TempDir())
			var cfg caddy.Config
			if err := json.Unmarshal(js, &cfg); err != nil {
				t.Fatal(err)
			}
			if err := caddy.Validate(&cfg); err != nil {
				t.Errorf("adapted config does not validate: %v", err)
			}
		})
	}
}
