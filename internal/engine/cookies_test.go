package engine

import "testing"

func TestEditAttributes(t *testing.T) {
	on, off := true, false
	lax, none := "Lax", ""
	for _, tc := range []struct {
		name  string
		rule  CookieRule
		attrs string // the line after its value
		want  string
	}{
		{"no rule: every byte kept", CookieRule{}, ";  Path=/app ;HttpOnly; Priority=High; x", ";  Path=/app ;HttpOnly; Priority=High; x"},
		{"nothing after the value", CookieRule{Secure: &on}, "", "; Secure"},
		{"text before the first ';' kept", CookieRule{HTTPOnly: &on}, "  ; Path=/", "  ; Path=/; HttpOnly"},

		{"Secure added at the end", CookieRule{Secure: &on}, "; Path=/; HttpOnly", "; Path=/; HttpOnly; Secure"},
		{"Secure there, as written", CookieRule{Secure: &on}, "; secure ; Path=/", "; secure ; Path=/"},
		{"Secure removed, any spelling", CookieRule{Secure: &off}, "; Secure; Path=/; SECURE ", "; Path=/"},
		{"HttpOnly added", CookieRule{HTTPOnly: &on}, "; Path=/", "; Path=/; HttpOnly"},
		{"HttpOnly removed", CookieRule{HTTPOnly: &off}, "; httponly; Path=/", "; Path=/"},
		{"Partitioned added after SameSite", CookieRule{Partitioned: &on, SameSite: &lax}, "; Path=/", "; Path=/; SameSite=Lax; Partitioned"},
		{"Partitioned removed", CookieRule{Partitioned: &off}, "; Partitioned; Secure", "; Secure"},
		{"SameSite replaced in place", CookieRule{SameSite: &lax}, "; samesite=None; Secure", "; SameSite=Lax; Secure"},
		{"SameSite added", CookieRule{SameSite: &lax}, "; Path=/", "; Path=/; SameSite=Lax"},
		{"SameSite removed", CookieRule{SameSite: &none}, "; SameSite=Strict; Path=/", "; Path=/"},
		{"SameSite kept without a rule", CookieRule{Secure: &on}, "; SameSite=Strict", "; SameSite=Strict; Secure"},
		{"additions in a fixed order", CookieRule{Secure: &on, HTTPOnly: &on, SameSite: &lax, Partitioned: &on}, "", "; Secure; HttpOnly; SameSite=Lax; Partitioned"},

		{"Domain rewritten, case and dot aside", CookieRule{Domain: &Rewrite{From: "example.com", To: "app.example.net"}}, "; Domain=.Example.COM; Path=/", "; Domain=app.example.net; Path=/"},
		{"Domain of another site kept", CookieRule{Domain: &Rewrite{From: "example.com", To: "x.net"}}, "; domain=sub.example.com", "; domain=sub.example.com"},
		{"Domain removed", CookieRule{Domain: &Rewrite{From: ".example.com"}}, "; Path=/; Domain=example.com; Secure", "; Path=/; Secure"},
		{"Path prefix rewritten", CookieRule{Path: &Rewrite{From: "/app", To: "/v2"}}, "; Path=/app/cart", "; Path=/v2/cart"},
		{"Path to / without a double slash", CookieRule{Path: &Rewrite{From: "/app", To: "/"}}, "; path=/app/cart", "; Path=/cart"},
		{"Path equal to the prefix", CookieRule{Path: &Rewrite{From: "/app", To: "/"}}, "; Path=/app", "; Path=/"},
		{"Path is a prefix match of the string, not of segments (as nginx's)", CookieRule{Path: &Rewrite{From: "/app", To: "/x"}}, "; Path=/apple", "; Path=/xle"},
		{"Path elsewhere kept", CookieRule{Path: &Rewrite{From: "/app", To: "/"}}, "; Path=/shop", "; Path=/shop"},

		{"__Host-: Secure, Path=/, no Domain", CookieRule{Prefix: "__Host-"}, "; Domain=example.com; Path=/app; HttpOnly", "; Path=/; HttpOnly; Secure"},
		{"__Host-: Path=/ added last", CookieRule{Prefix: "__Host-"}, "; HttpOnly", "; HttpOnly; Secure; Path=/"},
		{"__Host-: Secure kept on when the rule removes it", CookieRule{Prefix: "__Host-", Secure: &off}, "; Secure; Path=/", "; Secure; Path=/"},
		{"__Secure-: Secure, Domain kept", CookieRule{Prefix: "__Secure-"}, "; Domain=example.com", "; Domain=example.com; Secure"},
	} {
		b := &block{CookieRule: tc.rule}
		if got := string(b.editAttributes(nil, tc.attrs)); got != tc.want {
			t.Errorf("%s: %q → %q, want %q", tc.name, tc.attrs, got, tc.want)
		}
	}
	b := &block{CookieRule: CookieRule{Secure: &on}}
	if got := string(b.editAttributes([]byte("session=v"), "; Path=/")); got != "session=v; Path=/; Secure" {
		t.Errorf("editAttributes does not append to dst: %q", got)
	}
}

// A request cookie's name finds its rule as it should: the most specific glob (a class of one
// byte counts as a literal), a prefix the rule adds removed, the unprefixed name refused.
func TestBlocksIncoming(t *testing.T) {
	ruleFor := func(rules []CookieRule, name string) (string, int, bool) {
		app, b, refused := newBlocks(rules, "").incoming(name)
		if b == nil {
			return app, -1, refused
		}
		return app, b.order, refused
	}
	rules := []CookieRule{{Names: []string{"se*"}}, {Names: []string{"s[e]s*"}}, {Names: []string{"id"}, Prefix: "__Host-"}}
	for _, tc := range []struct {
		name, app string
		index     int
		refused   bool
	}{
		{"sess", "sess", 1, false},
		{"seat", "seat", 0, false},
		{"__Host-id", "id", 2, false},
		{"id", "id", 2, true},
		{"__Secure-id", "__Secure-id", -1, false},
		{"other", "other", -1, false},
	} {
		app, i, refused := ruleFor(rules, tc.name)
		if app != tc.app || i != tc.index || refused != tc.refused {
			t.Errorf("incoming(%q) = %q, %d, %v; want %q, %d, %v", tc.name, app, i, refused, tc.app, tc.index, tc.refused)
		}
	}
	if app, i, _ := ruleFor(nil, "sess"); app != "sess" || i != -1 {
		t.Errorf("without rules = %q, %d", app, i)
	}
}
