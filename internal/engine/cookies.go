// The app's own cookies hardened at the edge, managed or not: attributes added or removed,
// Domain and Path rewritten (nginx's proxy_cookie_*), transparent __Host-/__Secure- prefixes
// (the app sets and reads "session", the browser holds "__Host-session"), values too long for
// one cookie carried in several, and cookies held back until consent.

package engine

import (
	"fmt"
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
	id    string // see identity
}

// identity is equal for blocks that treat a cookie the same way ("" for none).
func (b *block) identity() string {
	if b == nil {
		return ""
	}
	return b.id
}

// attributesOnly reports whether the block only edits attributes: it changes neither the name
// the browser holds, nor the value, nor whether the cookie passes.
func (b *block) attributesOnly() bool {
	return b.Prefix == "" && !b.Split && !b.NeedsConsent
}

// needsSecure reports whether the block gives its cookies the Secure attribute, or an
// attribute browsers accept only with it.
func (b *block) needsSecure() bool {
	return b != nil && (b.Prefix != "" || b.Secure != nil && *b.Secure || b.SameSite != nil && *b.SameSite == "None" ||
		b.Partitioned != nil && *b.Partitioned)
}

// blocks finds the rule of a name: literal names in a map, globs in specificity order.
type blocks struct {
	all      []*block
	literal  map[string]*block
	globs    []globBlock
	visitor  string // the visitor cookie's name: no glob matches it, its attributes are track's
	prefixed bool   // some block has a prefix
	split    bool   // some block splits
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

func newBlocks(rules []CookieRule, visitor string) *blocks {
	if len(rules) == 0 {
		return nil
	}
	bs := &blocks{literal: map[string]*block{}, visitor: visitor}
	for i, r := range rules {
		b := &block{CookieRule: r, order: i}
		if b.Split && (b.SplitCookies < 2 || b.SplitCookies > MaxSplitCookies) {
			b.SplitCookies = defaultChunks
		}
		if !b.Split {
			b.SplitCookies = 0
		}
		b.id = fmt.Sprintf("secure=%s http_only=%s partitioned=%s same_site=%s domain=%s path=%s prefix=%s split=%d consent=%v",
			flagText(b.Secure), flagText(b.HTTPOnly), flagText(b.Partitioned), textOf(b.SameSite), rewriteText(b.Domain), rewriteText(b.Path),
			b.Prefix, b.SplitCookies, b.NeedsConsent)
		bs.all = append(bs.all, b)
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

func flagText(v *bool) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatBool(*v)
}

func textOf(v *string) string {
	if v == nil {
		return "-"
	}
	return strconv.Quote(*v)
}

func rewriteText(r *Rewrite) string {
	if r == nil {
		return "-"
	}
	return strconv.Quote(r.From) + ">" + strconv.Quote(r.To)
}

// list is every block, in the configured order.
func (bs *blocks) list() []*block {
	if bs == nil {
		return nil
	}
	return bs.all
}

// identityFor lists the identities of the blocks that can apply to a name of pattern.
func (bs *blocks) identityFor(pattern string) string {
	if bs == nil {
		return ""
	}
	var b strings.Builder
	for _, bl := range bs.all {
		for _, n := range bl.Names {
			if PatternsOverlap(n, pattern) {
				b.WriteString("{" + bl.id + "}")
				break
			}
		}
	}
	return b.String()
}

// check refuses blocks that contradict each other or the managed rules: one name in two
// blocks, a name the visitor cookie has, a prefixed or chunk name that a rule claims as its
// own, attributes a browser refuses together.
func (bs *blocks) check(j *jar) error {
	seen := map[string]string{}
	for _, b := range bs.list() {
		field := "cookie " + strings.Join(b.Names, " ")
		if b.Partitioned != nil && *b.Partitioned && b.Secure != nil && !*b.Secure {
			return fmt.Errorf("%s: partitioned with -secure: browsers refuse Partitioned without Secure", field)
		}
		for _, n := range b.Names {
			if prev, dup := seen[n]; dup {
				return fmt.Errorf("%s: %q already has a rule in %s; give each name one block", field, n, prev)
			}
			seen[n] = field
			if n == bs.visitor {
				return fmt.Errorf("%s: %q is the visitor cookie, whose attributes track sets", field, n)
			}
			var made [][2]string // a name the browser holds, and the setting that makes it
			if b.Prefix != "" {
				made = append(made, [2]string{b.Prefix + n, field + " { prefix " + b.Prefix + " }"})
			}
			if b.Split {
				made = append(made, [2]string{n + "__[1-7]", field + " { split }"})
			}
			for _, m := range made {
				for k := range j.rules {
					r := &j.rules[k]
					if r.kind != kindPlain && PatternsOverlap(r.pattern, m[0]) {
						return fmt.Errorf("%s and %s both claim the cookie the browser holds as %s: manage %q (the name the upstream uses) instead", r.field, m[1], overlapName(r.pattern, m[0]), n)
					}
				}
				for _, o := range bs.all {
					for _, on := range o.Names {
						if PatternsOverlap(on, m[0]) {
							return fmt.Errorf("%s and cookie %s both claim the cookie the browser holds as %s", m[1], strings.Join(o.Names, " "), overlapName(on, m[0]))
						}
					}
				}
			}
		}
	}
	return nil
}

// find returns the rule of name, or nil. No glob matches the visitor cookie.
func (bs *blocks) find(name string) *block {
	if bs == nil || name == "" || !bs.anyFirst && !bs.first[name[0]] {
		return nil
	}
	if b, ok := bs.literal[name]; ok {
		return b
	}
	if name == bs.visitor {
		return nil
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
	if bs == nil {
		return name, nil, false
	}
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

// reserves reports whether a name is the browser's form of a prefixed name or a piece of a
// split value: names the module writes itself.
func (bs *blocks) reserves(name string) bool {
	if bs == nil {
		return false
	}
	if app, _, _ := bs.incoming(name); app != name {
		return true
	}
	_, _, chunk := bs.chunkOf(name)
	return chunk
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
