package nginxuid

import (
	"encoding/base64"
	"github.com/signedcookies/caddy-signedcookies/cookie"
	"strings"
	"testing"
)

// nginx 1.22.1 (userid on, x86-64, server on 127.0.0.1) sent
// "Set-Cookie: uid=fwAAAWsOU788D01qAwMEAg==" with $uid_set
// "uid=0100007FBF530E6B6A4D0F3C02040303": word 0 is the server address
// 7f 00 00 01, printed little-endian.
const (
	nginxCookie = "fwAAAWsOU788D01qAwMEAg=="
	nginxHex    = "0100007FBF530E6B6A4D0F3C02040303"
	nginxUUID   = "7f000001-6b0e-53bf-3c0f-4d6a03030402"
)

// plusSlash has '+' and '/' in its encoding: "++++////AQIDBAUGBwgJCg==".
var plusSlash = [16]byte{0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}

type parseCase struct {
	name, value string
	ok          bool
	hex         string // Hex of the parsed ID when ok
	noHTTP      bool   // cannot be sent in a Cookie header (control bytes)
}

// parseCases are checked against Parse here and against the real nginx in
// TestAgainstNginx.
func parseCases() []parseCase {
	v := nginxCookie
	return []parseCase{
		{name: "as nginx wrote it", value: v, ok: true, hex: nginxHex},
		{name: "no padding", value: v[:22], ok: true, hex: nginxHex},
		{name: "one pad", value: v[:23], ok: true, hex: nginxHex},
		{name: "userid_mark form", value: v[:22] + "x=", ok: true, hex: nginxHex},
		{name: "garbage after 22", value: v[:22] + "!!garbage", ok: true, hex: nginxHex},
		{name: "long tail", value: v + strings.Repeat("A", 4000), ok: true, hex: nginxHex},
		{name: "unused bits of 22nd char set", value: v[:21] + "h==", ok: true, hex: nginxHex},
		{name: "plus and slash", value: Encode(plusSlash), ok: true, hex: Hex(plusSlash)},

		{name: "empty", value: ""},
		{name: "one char", value: "f"},
		{name: "21 chars", value: v[:21]},
		{name: "21 chars padded", value: v[:21] + "=="},
		{name: "pad at 21 of 22", value: v[:21] + "=" + "=="},
		{name: "pad at 0", value: "=" + v[1:]},
		{name: "url-safe alphabet", value: "----____" + Encode(plusSlash)[8:]},
		{name: "dash", value: v[:5] + "-" + v[6:]},
		{name: "underscore", value: v[:5] + "_" + v[6:]},
		{name: "dot", value: v[:5] + "." + v[6:]},
		{name: "space inside", value: v[:5] + " " + v[6:]},
		{name: "quote", value: `"` + v + `"`},
		{name: "percent-encoded pad", value: v[:22] + "%3D%3D", ok: true, hex: nginxHex},
		{name: "non-ASCII", value: v[:5] + "é" + v[7:]},
		{name: "bad 22nd char", value: v[:21] + "!" + v[22:]},
		{name: "NUL", value: v[:5] + "\x00" + v[6:], noHTTP: true},
		{name: "newline (Go's base64 skips it)", value: v[:5] + "\n" + v[5:], noHTTP: true},

		// A '=' inside the first 22 ends nginx's decode early; the missing
		// bytes stay zero.
		{name: "pad at 20", value: v[:20] + "==", ok: true, hex: nginxHex[:24] + "00" + nginxHex[26:]},
		{name: "pad at 20, junk after", value: v[:20] + "=!", ok: true, hex: nginxHex[:24] + "00" + nginxHex[26:]},
		{name: "pad at 18", value: v[:18] + "====", ok: true, hex: nginxHex[:24] + "000000" + nginxHex[30:]},
		{name: "pad at 16: last word zero", value: v[:16] + "======"},
		{name: "pad at 17", value: v[:17] + "====="},

		// nginx treats an ID whose last word is zero as no ID.
		{name: "all zero", value: Encode([16]byte{})},
		{name: "last word zero", value: Encode([16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})},
		{name: "only byte 15 set", value: Encode([16]byte{15: 1}), ok: true, hex: "00000000000000000000000001000000"},
	}
}

func TestParse(t *testing.T) {
	for _, c := range parseCases() {
		id, ok := Parse(c.value)
		if ok != c.ok {
			t.Errorf("%s: Parse(%.40q) ok = %v, want %v", c.name, c.value, ok, c.ok)
			continue
		}
		if ok && Hex(id) != c.hex {
			t.Errorf("%s: Parse(%.40q) = %s, want %s", c.name, c.value, Hex(id), c.hex)
		}
	}
}

func TestKnownCookie(t *testing.T) {
	id, ok := Parse(nginxCookie)
	if !ok {
		t.Fatalf("Parse(%q) failed", nginxCookie)
	}
	if got := Hex(id); got != nginxHex {
		t.Errorf("Hex = %s, want %s", got, nginxHex)
	}
	if got := cookie.UUIDString(id[:]); got != nginxUUID {
		t.Errorf("UUID = %s, want %s", got, nginxUUID)
	}
	if got := Encode(id); got != nginxCookie {
		t.Errorf("Encode = %s, want %s", got, nginxCookie)
	}
	if got := Encode(plusSlash); got != "++++////AQIDBAUGBwgJCg==" {
		t.Errorf("Encode(plusSlash) = %s", got)
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	long := nginxCookie + strings.Repeat("x", 1<<20)
	if n := testing.AllocsPerRun(100, func() { Parse(long) }); n != 0 {
		t.Errorf("Parse allocates %v times", n)
	}
}

// FuzzParse checks that Parse never panics, that it agrees with Go's base64
// where the two should agree, and that Parse(Encode(id)) == id.
func FuzzParse(f *testing.F) {
	for _, c := range parseCases() {
		f.Add(c.value)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := Parse(s)
		if ok {
			if len(s) < 22 || id[12]|id[13]|id[14]|id[15] == 0 {
				t.Fatalf("Parse(%q) accepted %x", s, id)
			}
			if h := Hex(id); len(h) != 32 || len(cookie.UUIDString(id[:])) != 36 {
				t.Fatalf("Hex %q / UUID %q", h, cookie.UUIDString(id[:]))
			}
		}
		// 22 characters all in the standard alphabet: nginx decodes them
		// like Go's lenient StdEncoding would with the "==" restored.
		if len(s) >= 22 && strings.Trim(s[:22], alphabet) == "" {
			want, err := base64.StdEncoding.DecodeString(s[:22] + "==")
			if err != nil || len(want) != 16 {
				t.Fatalf("Go cannot decode %q: %v", s[:22], err)
			}
			lastZero := want[12]|want[13]|want[14]|want[15] == 0
			if ok == lastZero || ok && string(id[:]) != string(want) {
				t.Fatalf("Parse(%q) = %x, %v; Go's base64 says %x", s, id, ok, want)
			}
		}

		var in [16]byte
		copy(in[:], s)
		enc := Encode(in)
		if want := base64.StdEncoding.EncodeToString(in[:]); enc != want {
			t.Fatalf("Encode(%x) = %q, want %q", in, enc, want)
		}
		out, ok := Parse(enc)
		if nonzero := in[12]|in[13]|in[14]|in[15] != 0; ok != nonzero || ok && out != in {
			t.Fatalf("Parse(Encode(%x)) = %x, %v", in, out, ok)
		}
	})
}
