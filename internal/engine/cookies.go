// The app's own cookies hardened at the edge, managed or not: attributes added or removed,
// Domain and Path rewritten (nginx's proxy_cookie_*), transparent __Host-/__Secure- prefixes
// (the app sets and reads "session", the browser holds "__Host-session"), values too long for
// one cookie carried in several, and cookies held back until consent.

package engine

import (
	"path"
	"strconv"
	"strings"
)

// CookieRule changes how the upstream's cookies whose names match Names are set and read.
// Where several rules match a name, the most specific wins (a name before a glob, a glob with
// more literal characters before one with fewer), then the first.
type CookieRule struct {
	Names []string
	// Secure, HTTPOnly, Partitioned: true adds the attribute, false removes it, nil keeps it.
	Secure, HTTPOnly, Partitioned *bool
	// SameSite replaces the attribute ("Lax", "Strict", "None"); a pointer to "" removes it.
	SameSite *string
	// Domain rewrites a Domain attribute equal to From (case aside, a leading dot aside) to
	// To, or removes it when To is "".
	Domain *Rewrite
	// Path rewrites a Path attribute that starts with From: that prefix becomes To.
	Path *Rewrite
	// Prefix is "__Host-" or "__Secure-": the browser holds the prefixed name, with what
	// the prefix requires; the upstream sets and reads the name without it, and a client-sent
	// cookie of the unprefixed name is dropped.
	Prefix string
	// Split carries an encoded value too long for one cookie in up to SplitCookies cookies
	// (name, name__1, …; at most MaxSplitCookies); managed cookies only.
	Split        bool
	SplitCookies int
	// NeedsConsent holds the cookie back (Set-Cookie dropped, values not forwarded) unless
	// the visitor cookie's gates (consent, honor_gpc) allow a new ID.
	NeedsConsent bool
}

// Rewrite is a From → To rewrite of an attribute.
type Rewrite struct{ From, To string }

// MaxSplitCookies bounds the cookies one split value takes (SplitCookies); defaultChunks is
// what a split takes unless told otherwise: three 4 KB cookies keep a request within Caddy's
// default 16 KB of headers (and what browsers send over HTTP/2) with room for the others.
const (
	MaxSplitCookies = 8
	defaultChunks   = 3
)

// block is a compiled CookieRule.
type block struct {
	CookieRule
	order int
}

// blocks finds the rule of a name: literal names in a map, globs in specificity order.
type blocks struct {
	literal  map[string]*block
	globs    []globBlock
	prefixed bool // some block has a prefix
	split    bool // some block splits
	// first holds the first byte of every literal name and glob prefix: a name starting with
	// another byte has no rule, found without a map lookup. anyFirst: a glob starts with a
	// metacharacter.
	first    [256]bool
	anyFirst bool
}

type globBlock struct {
	pattern, prefix string
	literals        int
	b               *block
}

func newBlocks(rules []CookieRule) *blocks {
	if len(rules) == 0 {
		return nil
	}
	bs := &blocks{literal: map[string]*block{}}
	for i, r := range rules {
		b := &block{CookieRule: r, order: i}
		if b.Split && (b.SplitCookies < 2 || b.SplitCookies > MaxSplitCookies) {
			b.SplitCookies = defaultChunks
		}
		bs.prefixed = bs.prefixed || r.Prefix != ""
		bs.split = bs.split || r.Split
		for _, n := range r.Names {
			if pre := literalPrefix(n); pre == "" {
				bs.anyFirst = true
			} else {
				bs.first[pre[0]] = true
			}
			if !strings.ContainsAny(n, `*?[\`) {
				if _, dup := bs.literal[n]; !dup {
					bs.literal[n] = b
				}
				continue
			}
			lits := 0
			for _, a := range atoms(n, false) {
				if !a.star && len(a.set) == 1 && a.set[0].lo == a.set[0].hi {
					lits++
				}
			}
			bs.globs = append(bs.globs, globBlock{pattern: n, prefix: literalPrefix(n), literals: lits, b: b})
		}
	}
	// stable: equal specificity keeps the configured order
	for i := 1; i < len(bs.globs); i++ {
		for j := i; j > 0 && bs.globs[j].literals > bs.globs[j-1].literals; j-- {
			bs.globs[j], bs.globs[j-1] = bs.globs[j-1], bs.globs[j]
		}
	}
	return bs
}

// find returns the rule of name, or nil.
func (bs *blocks) find(name string) *block {
	if bs == nil || name == "" || !bs.anyFirst && !bs.first[name[0]] {
		return nil
	}
	if b, ok := bs.literal[name]; ok {
		return b
	}
	for i := range bs.globs {
		g := &bs.globs[i]
		if !strings.HasPrefix(name, g.prefix) {
			continue
		}
		if ok, _ := path.Match(g.pattern, name); ok {
			return g.b
		}
	}
	return nil
}

// incoming maps a request cookie's name to the name the upstream reads and its rule: a
// prefixed name loses its prefix; an unprefixed name whose rule wants a prefix is refused
// (a sibling subdomain can set it; only this host over HTTPS can set the prefixed one).
func (bs *blocks) incoming(name string) (app string, b *block, refused bool) {
	if bs.prefixed {
		for _, pre := range [...]string{"__Host-", "__Secure-"} {
			if rest, ok := strings.CutPrefix(name, pre); ok {
				if b := bs.find(rest); b != nil && b.Prefix == pre {
					return rest, b, false
				}
			}
		}
	}
	b = bs.find(name)
	if b != nil && b.Prefix != "" {
		return name, b, true
	}
	return name, b, false
}

// RuleFor finds the cookie rule of a request cookie's name as a request does: the name the
// upstream reads, the index of its rule in rules (-1 when none), and whether the name is
// refused for lacking the prefix its rule adds.
func RuleFor(rules []CookieRule, name string) (app string, index int, refused bool) {
	bs := newBlocks(rules)
	if bs == nil {
		return name, -1, false
	}
	app, b, refused := bs.incoming(name)
	if b == nil {
		return app, -1, false
	}
	return app, b.order, refused
}

// chunkOf reports whether name is a chunk (name__1 … name__7) of a split cookie, and of which.
func (bs *blocks) chunkOf(name string) (base string, index int, ok bool) {
	if bs == nil || !bs.split || len(name) < 4 || name[len(name)-3:len(name)-1] != "__" {
		return "", 0, false
	}
	i := int(name[len(name)-1] - '0')
	if i < 1 || i >= MaxSplitCookies {
		return "", 0, false
	}
	base = name[:len(name)-3]
	if app, b, refused := bs.incoming(base); !refused && b != nil && b.Split && i < b.SplitCookies {
		return app, i, true
	}
	return "", 0, false
}

// editLine rewrites a Set-Cookie line as its rule says: the name prefixed, the attributes
// added, removed or rewritten, every other byte kept. value replaces the line's value when
// not nil.
func (b *block) editLine(dst []byte, sc setCookie, value []byte) []byte {
	start := sc.nameStart()
	dst = append(dst, sc.line[:start]...)
	dst = append(dst, b.Prefix...)
	if value != nil {
		dst = append(dst, sc.line[start:sc.valueStart]...)
		dst = append(dst, value...)
	} else {
		dst = append(dst, sc.line[start:sc.valueEnd]...)
	}
	return b.editAttributes(dst, sc.line[sc.valueEnd:])
}

// editAttributes appends attrs (the line after its value, from its first ';') edited.
func (b *block) editAttributes(dst []byte, attrs string) []byte {
	host := b.Prefix == "__Host-"
	secure := b.Secure
	if b.Prefix != "" {
		on := true
		secure = &on
	}
	var seenSecure, seenHTTPOnly, seenSameSite, seenPartitioned, seenPath bool
	for attrs != "" {
		seg := attrs
		if i := strings.IndexByte(attrs[1:], ';'); i >= 0 {
			seg, attrs = attrs[:i+1], attrs[i+1:]
		} else {
			attrs = ""
		}
		// seg starts with ';' (or is the text before the first one, which keeps as it is)
		if seg[0] != ';' {
			dst = append(dst, seg...)
			continue
		}
		k, v, _ := strings.Cut(seg[1:], "=")
		k, v = trimWS(k), trimWS(v)
		switch {
		case strings.EqualFold(k, "secure"):
			seenSecure = true
			if secure != nil && !*secure {
				continue
			}
		case strings.EqualFold(k, "httponly"):
			seenHTTPOnly = true
			if b.HTTPOnly != nil && !*b.HTTPOnly {
				continue
			}
		case strings.EqualFold(k, "partitioned"):
			seenPartitioned = true
			if b.Partitioned != nil && !*b.Partitioned {
				continue
			}
		case strings.EqualFold(k, "samesite") && b.SameSite != nil:
			seenSameSite = true
			if *b.SameSite == "" {
				continue
			}
			dst = append(dst, "; SameSite="...)
			dst = append(dst, *b.SameSite...)
			continue
		case strings.EqualFold(k, "domain"):
			if host {
				continue // a __Host- cookie has no Domain
			}
			if r := b.Domain; r != nil && strings.EqualFold(strings.TrimPrefix(v, "."), strings.TrimPrefix(r.From, ".")) {
				if r.To == "" {
					continue
				}
				dst = append(dst, "; Domain="...)
				dst = append(dst, r.To...)
				continue
			}
		case strings.EqualFold(k, "path"):
			seenPath = true
			if host {
				dst = append(dst, "; Path=/"...)
				continue
			}
			if r := b.Path; r != nil && strings.HasPrefix(v, r.From) {
				rest := v[len(r.From):]
				if strings.HasSuffix(r.To, "/") && strings.HasPrefix(rest, "/") {
					rest = rest[1:] // "/app" → "/" turns "/app/x" into "/x", not "//x"
				}
				dst = append(dst, "; Path="...)
				dst = append(dst, r.To...)
				dst = append(dst, rest...)
				continue
			}
		}
		dst = append(dst, seg...)
	}
	if secure != nil && *secure && !seenSecure {
		dst = append(dst, "; Secure"...)
	}
	if b.HTTPOnly != nil && *b.HTTPOnly && !seenHTTPOnly {
		dst = append(dst, "; HttpOnly"...)
	}
	if b.SameSite != nil && *b.SameSite != "" && !seenSameSite {
		dst = append(dst, "; SameSite="...)
		dst = append(dst, *b.SameSite...)
	}
	if b.Partitioned != nil && *b.Partitioned && !seenPartitioned {
		dst = append(dst, "; Partitioned"...)
	}
	if host && !seenPath {
		dst = append(dst, "; Path=/"...)
	}
	return dst
}

// nameStart is where the line's name begins (after leading spaces).
func (sc setCookie) nameStart() int {
	i := 0
	for i < len(sc.line) && isWS(sc.line[i]) {
		i++
	}
	return i
}

// chunkSize is how much of an encoded value one chunk cookie holds: what browsers store of a
// cookie, less the chunk's name ("name__7") and the head's count ("8*").
func chunkSize(name string) int { return browserCookieLimit - len(name) - 5 }

// splitValue cuts an encoded value into chunks: the head "k*<first>", then the rest.
func splitValue(name string, encoded []byte) [][]byte {
	size := chunkSize(name)
	k := (len(encoded) + size - 1) / size
	var out [][]byte
	for i := 0; i < k; i++ {
		part := encoded[i*size : min(len(encoded), (i+1)*size)]
		if i == 0 {
			part = append([]byte(strconv.Itoa(k)+"*"), part...)
		}
		out = append(out, part)
	}
	return out
}

// parseSplitHead reports whether a value is the head of a split value, and of how many chunks.
func parseSplitHead(value string) (int, string, bool) {
	if len(value) < 2 || value[1] != '*' || value[0] < '2' || value[0] > '0'+MaxSplitCookies {
		return 0, "", false
	}
	return int(value[0] - '0'), value[2:], true
}

func chunkName(name string, i int) string { return name + "__" + strconv.Itoa(i) }
