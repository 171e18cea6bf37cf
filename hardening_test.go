package signedcookies

import (
	"net/http"
	"strings"
	"testing"
)

// A cookie hidden in an unmanaged pair (read by ASP.NET Core, Python's SimpleCookie, old
// Rack, PHP) never reaches the upstream, and the verified one still does.
func TestSmuggledCookiesThroughCaddy(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign session
		track
	}
	reverse_proxy `+up.Addr)
	c := newClient(t)
	get(t, c, ci.URL+"/")
	vid := jarValue(t, c, ci.URL, "vid")
	id := up.last().Header.Get("X-Visitor-Id")
	for _, smuggled := range []string{"x=1,session=forged", "x=1 vid=forged", `x=1"session=forged`, "session[a]=forged", "vid[]=forged", "session%00=forged"} {
		get(t, http.DefaultClient, ci.URL+"/", "Cookie", "vid="+vid+"; "+smuggled)
		got := up.last().Header.Get("Cookie")
		if strings.Contains(got, "forged") || got != "vid="+id {
			t.Errorf("%q: upstream Cookie %q, want only vid=%s", smuggled, got, id)
		}
	}
}

// on_invalid reject hands handle_errors a request without the forged cookie, and a second
// signed_cookies there (the way to cover error routes) passes the request through untouched.
func TestRejectLeavesNothingForgedForErrorRoutes(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign session
		on_invalid reject
	}
	respond "unreachable"
	handle_errors {
		signed_cookies {
			secret `+testSecret+`
			sign session
		}
		header X-Err {err.status_code}
		reverse_proxy `+up.Addr+`
	}`)
	valid := signedFor(t, "session", "alice")
	resp, _ := get(t, http.DefaultClient, ci.URL+"/", "Cookie", "session=forged; a=1; other="+valid)
	if resp.Header.Get("X-Err") != "400" {
		t.Fatalf("error %q, want 400 handled by handle_errors", resp.Header.Get("X-Err"))
	}
	if got := up.last().Header.Get("Cookie"); got != "a=1; other="+valid {
		t.Errorf("error route's upstream got Cookie %q", got)
	}
	resp, _ = get(t, http.DefaultClient, ci.URL+"/", "Cookie", "session="+strings.Repeat("k=v;", 3001))
	if resp.Header.Get("X-Err") != "431" || up.last().Header.Get("Cookie") != "" {
		t.Errorf("431 path: error %q, upstream Cookie %q", resp.Header.Get("X-Err"), up.last().Header.Get("Cookie"))
	}
	if len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("a second pass added cookies: %q", resp.Header.Values("Set-Cookie"))
	}
}

func signedFor(t testing.TB, name, plain string) string {
	t.Helper()
	return encodeFor(t, signCodec(t), name, plain)
}

// A route that ends without writing anything still gets its headers rewritten.
func TestNothingWrittenStillRewritten(t *testing.T) {
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign session
		track
	}
	header Set-Cookie "session=plain; Path=/"`)
	resp, _ := get(t, http.DefaultClient, ci.URL+"/")
	if len(setCookies(resp, "vid")) != 1 {
		t.Errorf("no visitor cookie on an empty response: %q", resp.Header.Values("Set-Cookie"))
	}
	for _, l := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(l, "session=plain") {
			t.Errorf("managed cookie left unsigned: %q", l)
		}
	}
}

// Clearing a bad __Secure- cookie (or any, on HTTPS) carries Secure, or browsers ignore it.
func TestClearingPrefixedCookieIsSecure(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign __Secure-sess
	}
	reverse_proxy `+up.Addr)
	resp, _ := get(t, http.DefaultClient, ci.URL+"/", "Cookie", "__Secure-sess=forged")
	sc := setCookies(resp, "__Secure-sess")
	if len(sc) != 1 || sc[0] != "__Secure-sess=; Path=/; Max-Age=0; Secure" {
		t.Errorf("clearing line %q", sc)
	}
}
