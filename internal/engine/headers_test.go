package engine

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestNormalizeHeaderName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"X-Visitor-Id", "x-visitor-id"},
		{"x_visitor_id", "x-visitor-id"},
		{"X.VISITOR.ID", "x-visitor-id"},
		{"X-Visitor_Id.2", "x-visitor-id-2"},
		{"Cookie", "cookie"},
		{"X-Flask-Session-", "x-flask-session-"},
		{"", ""},
	} {
		if got := normalizeHeaderName(tc.in); got != tc.want {
			t.Errorf("normalizeHeaderName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSameHeaderName(t *testing.T) {
	for _, tc := range []struct {
		k, norm string
		want    bool
	}{
		{"X-Visitor-Id", "x-visitor-id", true},
		{"x-visitor-id", "x-visitor-id", true},
		{"X_VISITOR_ID", "x-visitor-id", true},
		{"x.visitor.id", "x-visitor-id", true},
		{"X-Visitor_Id", "x-visitor-id", true},
		{"X-Visitor-Ids", "x-visitor-id", false},
		{"X-Visitor-I", "x-visitor-id", false},
		{"X-Visitor-Ix", "x-visitor-id", false},
		{"X Visitor Id", "x-visitor-id", false},
		{"Cookie", "cookie", true},
		{"Cookie", "Cookie", false}, // norm is normalized: upper case never matches
		{"", "", true},
	} {
		if got := sameHeaderName(tc.k, tc.norm); got != tc.want {
			t.Errorf("sameHeaderName(%q, %q) = %v, want %v", tc.k, tc.norm, got, tc.want)
		}
	}
	// Over the bytes of header names (tokens), sameHeaderName agrees with normalizeHeaderName.
	for c := byte(0x21); c < 0x7f; c++ {
		k := "a" + string(c) + "B"
		if !sameHeaderName(k, normalizeHeaderName(k)) {
			t.Errorf("sameHeaderName(%q, normalizeHeaderName(%q)) = false", k, k)
		}
	}
	var same bool
	if n := testing.AllocsPerRun(100, func() { same = sameHeaderName("X_Visitor_Id", "x-visitor-id") }); n != 0 || !same {
		t.Errorf("sameHeaderName allocates %v times (answered %v)", n, same)
	}
}

func TestScrubHeader(t *testing.T) {
	h := http.Header{
		"X-Visitor-Id":  {"spoof1"},
		"x_visitor_id":  {"spoof2"},
		"X.Visitor.Id":  {"spoof3", "spoof4"},
		"X-VISITOR_ID":  {"spoof5"},
		"X-Visitor-Idx": {"kept"},
		"Visitor-Id":    {"kept"},
		"Cookie":        {"a=1"},
	}
	scrubHeader(h, "x-visitor-id")
	if got := sortedNames(h); !slices.Equal(got, []string{"Cookie", "Visitor-Id", "X-Visitor-Idx"}) {
		t.Errorf("after scrubHeader: %q", got)
	}
	scrubHeader(h, "x-visitor-id") // nothing left to remove
	if len(h) != 3 {
		t.Errorf("a second scrub removed more: %q", sortedNames(h))
	}
}

func TestRemoveTokens(t *testing.T) {
	dropProtected := func(tok string) bool {
		return strings.EqualFold(tok, "cookie") || strings.EqualFold(tok, "x-visitor-id")
	}
	for _, tc := range []struct {
		name   string
		values []string // nil: the field is absent
		want   []string // nil: the field is gone
	}{
		{"absent", nil, nil},
		{"nothing to drop, kept as written", []string{"keep-alive,  X-Other"}, []string{"keep-alive,  X-Other"}},
		{"one line", []string{"keep-alive, Cookie ,x-visitor-id, X-Other"}, []string{"keep-alive, X-Other"}},
		{"several lines joined", []string{"Cookie", "X-Visitor-Id, X-Other", "upgrade"}, []string{"X-Other, upgrade"}},
		{"empty tokens go once one is dropped", []string{"a,,b, ,COOKIE"}, []string{"a, b"}},
		{"every token dropped", []string{"Cookie", " x-visitor-id "}, nil},
		{"a token that contains the name", []string{"Cookies, X-Cookie"}, []string{"Cookies, X-Cookie"}},
	} {
		h := http.Header{"X-Kept": {"1"}}
		if tc.values != nil {
			h["Connection"] = slices.Clone(tc.values)
		}
		var seen []string
		removeTokens(h, "Connection", func(tok string) bool {
			seen = append(seen, tok)
			return dropProtected(tok)
		})
		got, present := h["Connection"]
		if (tc.want == nil) == present || !slices.Equal(got, tc.want) {
			t.Errorf("%s: Connection %q (present %v), want %q", tc.name, got, present, tc.want)
		}
		if h.Get("X-Kept") != "1" {
			t.Errorf("%s: another field changed", tc.name)
		}
		for _, tok := range seen {
			if tok != strings.TrimSpace(tok) {
				t.Errorf("%s: drop saw the untrimmed token %q", tc.name, tok)
			}
		}
	}
	h := http.Header{"Connection": {"keep-alive, X-Other"}}
	if n := testing.AllocsPerRun(100, func() { removeTokens(h, "Connection", dropProtected) }); n != 0 {
		t.Errorf("removeTokens allocates %v times when there is nothing to drop", n)
	}
}

func TestDropTrailerCookies(t *testing.T) {
	h := http.Header{
		http.TrailerPrefix + "Set-Cookie":  {"session=alice"},
		"trailer:set-cookie":               {"a=1"},
		"TRAILER:SET-COOKIE":               {"b=2"},
		http.TrailerPrefix + "X-Checksum":  {"abc"},
		http.TrailerPrefix + "Set-Cookies": {"kept"},
		http.TrailerPrefix:                 {"kept"},
		"Set-Cookie":                       {"vid=x"}, // a header, rewritten elsewhere
		"X-Trailer-Set-Cookie":             {"kept"},
	}
	dropTrailerCookies(h)
	want := []string{"Set-Cookie", "Trailer:", "Trailer:Set-Cookies", "Trailer:X-Checksum", "X-Trailer-Set-Cookie"}
	if got := sortedNames(h); !slices.Equal(got, want) {
		t.Errorf("after dropTrailerCookies: %q, want %q", got, want)
	}
}

func TestUnannounceTrailerCookies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   []string // nil: no Trailer field left
	}{
		{"with another", []string{"Set-Cookie, X-Checksum"}, []string{"X-Checksum"}},
		{"any case, several lines", []string{"X-A", "set-cookie", "SET-COOKIE , X-B"}, []string{"X-A, X-B"}},
		{"only Set-Cookie", []string{"Set-Cookie"}, nil},
		{"none announced", []string{"X-Checksum"}, []string{"X-Checksum"}},
	} {
		h := http.Header{"Trailer": slices.Clone(tc.values)}
		unannounceTrailerCookies(h)
		got, present := h["Trailer"]
		if (tc.want == nil) == present || !slices.Equal(got, tc.want) {
			t.Errorf("%s: Trailer %q (present %v), want %q", tc.name, got, present, tc.want)
		}
	}
}

func sortedNames(h http.Header) []string {
	var names []string
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}
