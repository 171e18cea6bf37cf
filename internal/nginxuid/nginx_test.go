package nginxuid

import (
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/nginxtest"
	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/testskip"
)

func TestMain(m *testing.M) { os.Exit(testskip.Main(m)) }

// uidVars requests url, with "Cookie: uid=<cookie>" when withCookie, and returns nginx's $uid_got and $uid_set and the uid cookie it set.
func uidVars(t *testing.T, url, cookie string, withCookie bool) (got, set, setCookie string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if withCookie {
		req.Header.Set("Cookie", "uid="+cookie)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %q %v", url, resp.Status, body, err)
	}
	got, set, found := strings.Cut(string(body), "|")
	if !found {
		t.Fatalf("GET %s: body %q", url, body)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "uid" {
			setCookie = ck.Value
		}
	}
	return got, set, setCookie
}

func TestAgainstNginx(t *testing.T) {
	base := nginxtest.Start(t, `
		userid on;
		userid_name uid;
		userid_expires 365d;
		default_type text/plain;
		location / { return 200 "$uid_got|$uid_set"; }
		location /mark { userid_mark x; return 200 "$uid_got|$uid_set"; }`)

	// A fresh cookie: nginx prints the new ID in $uid_set, with the prefix.
	got, set, cookie := uidVars(t, base+"/", "", false)
	if got != "" || cookie == "" {
		t.Fatalf("first visit: $uid_got %q, Set-Cookie uid=%q", got, cookie)
	}
	id, ok := Parse(cookie)
	if !ok {
		t.Fatalf("Parse(%q) rejects nginx's own cookie", cookie)
	}
	if want := "uid=" + Hex(id); set != want {
		t.Fatalf("nginx's $uid_set = %q, Hex gives %q", set, want)
	}
	// Word 0 of a v2 ID is the server's IPv4 address in network order.
	if id[0] != 127 {
		t.Errorf("first ID byte %d, want 127 (the server address)", id[0])
	}
	if enc := Encode(id); enc != cookie {
		t.Errorf("nginx wrote %q, Encode writes %q", cookie, enc)
	}

	// The cookie comes back: nginx keeps it and sets none.
	got, set, again := uidVars(t, base+"/", cookie, true)
	if want := "uid=" + Hex(id); got != want || set != "" || again != "" {
		t.Fatalf("return visit: $uid_got %q $uid_set %q Set-Cookie %q, want $uid_got %q only", got, set, again, want)
	}

	// A cookie from Encode is taken as it stands.
	var mine [16]byte
	rand.Read(mine[:])
	mine[15] |= 1 // a zero last word is no ID to nginx
	got, set, again = uidVars(t, base+"/", Encode(mine), true)
	if want := "uid=" + Hex(mine); got != want || set != "" || again != "" {
		t.Fatalf("Encode(%x): $uid_got %q $uid_set %q Set-Cookie %q, want $uid_got %q only", mine, got, set, again, want)
	}

	// With userid_mark nginx writes the mark in place of the first '='.
	_, set, marked := uidVars(t, base+"/mark", "", false)
	if !strings.HasSuffix(marked, "x=") || len(marked) != 24 {
		t.Errorf("userid_mark x: cookie %q", marked)
	}
	if mid, ok := Parse(marked); !ok || set != "uid="+Hex(mid) {
		t.Errorf("marked cookie %q: Parse ok=%v Hex %s, nginx $uid_set %q", marked, ok, Hex(mid), set)
	}

	// Every table case: nginx's $uid_got is "uid=<Hex>" exactly when Parse
	// accepts, and a rejected value gets a new cookie.
	for _, c := range parseCases() {
		if c.noHTTP {
			continue
		}
		got, set, _ := uidVars(t, base+"/", c.value, true)
		id, ok := Parse(c.value)
		want := ""
		if ok {
			want = "uid=" + Hex(id)
		}
		if got != want || (set == "") != ok {
			t.Errorf("%s: uid=%.40q: nginx $uid_got %q $uid_set %q; Parse gives ok=%v %q", c.name, c.value, got, set, ok, want)
		}
	}
}
