// How the signed_cookies handlers of a config are composed, checked once when it loads:
// handlers that cannot share a request path (the same cookie managed two ways, two visitor
// cookies), a handler no request can reach (after reverse_proxy in the same route), cookies
// that need Secure on a site served only over plain HTTP, and handlers that share keys and a
// cookie name without a realm. Caddy provisions a config's handlers one by one; the first
// signed_cookies handler reads the whole HTTP app (routes already provisioned and routes
// still in JSON alike) and checks it. Compositions this cannot see (inside reverse_proxy's
// handle_response, say) are checked per request by the engine, which refuses them with a 500.

package signedcookies

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/signedcookies/caddy-signedcookies/internal/engine"
)

// checkComposition checks the composition of the config h belongs to, once per config: the
// config's own app remembers it, so nothing outlives the config.
func checkComposition(ctx caddy.Context, h *Handler) error {
	mods := ctx.Modules()
	if len(mods) == 0 {
		return nil
	}
	app, ok := mods[0].(*caddyhttp.App)
	if !ok {
		return nil // provisioned outside an HTTP app (tests, benchmarks)
	}
	ours, err := ctx.App(keyRingAppID)
	if err != nil {
		return err
	}
	if !ours.(*keyRingApp).firstCheck(app) {
		return nil
	}
	c := &composer{logger: h.logger, onePath: map[[2]int]bool{}, warned: map[string]bool{}}
	for _, name := range sortedKeys(app.Servers) {
		c.server(name, app.Servers[name])
	}
	c.sharedKeys()
	return c.err
}

// handlerAt is a signed_cookies handler found in the config, and where.
type handlerAt struct {
	h      *Handler
	policy *engine.Policy
	where  string
	id     int
}

func (x *handlerAt) String() string { return fmt.Sprintf("%s (%s)", x.policy, x.where) }

// state is where a request can be: the handlers it went through (a bit each) and the route
// groups already satisfied (Caddy runs one route per group per request).
type state struct {
	through uint64
	groups  string // sorted, NUL-separated
	// paths are the path matchers the request matched on the way: each one is a list of
	// patterns (\x01-separated) of which the path matches one; lists are NUL-separated.
	paths string
	// notPaths are the path matchers the request did not match on the way (lists as in
	// paths): a route matching only within one of them cannot run.
	notPaths string
	// errors: on an error route; covered: a signed_cookies handler ran on it, so its writer
	// rewrites what the error route's handlers answer.
	errors, covered bool
	// cookies are the request cookies whose placeholders ({http.request.cookie.*}) handlers
	// on the way read (sorted, NUL-separated), with where: read before a signed_cookies
	// handler that manages them, they hold the client's value, forged or not.
	cookies string
}

// maxStates bounds the states followed at one point; past it, the check stops following
// groups (it then may see paths that cannot happen, never miss one).
const maxStates = 1024

type composer struct {
	logger   *zap.Logger
	handlers []*handlerAt
	err      error
	named    map[string]*caddyhttp.Route
	nodes    map[string][]handlerNode
	reached  map[int]bool
	warned   map[string]bool // load warnings already given
	seen     map[[2]int]bool // pairs met on one request path (in this server)
	onePath  map[[2]int]bool // the same, in every server
	plain    bool            // the server being checked serves only plain HTTP
	// apps are the upstreams reverse_proxy sends requests to in the server being checked
	// (by dial addresses, or where the handler is when they are dynamic), with the handlers
	// each request that reaches them went through.
	apps map[string][]appReach
}

// appReach is a request reaching an app: the handlers it went through, and where.
type appReach struct {
	through uint64
	where   string
}

func (c *composer) server(name string, srv *caddyhttp.Server) {
	c.named, c.reached, c.seen, c.nodes = srv.NamedRoutes, map[int]bool{}, map[[2]int]bool{}, map[string][]handlerNode{}
	c.plain = len(srv.TLSConnPolicies) == 0
	c.apps = map[string][]appReach{}
	first := len(c.handlers)
	// Where a handler is reads as a user wrote it: the server's addresses, then each route's
	// host and path matchers (a Caddyfile site is a route matching its host).
	where := "server " + name
	if len(srv.Listen) > 0 {
		where += " on " + strings.Join(srv.Listen, " ")
	}
	c.collect(srv.Routes, where)
	for _, n := range sortedKeys(srv.NamedRoutes) {
		c.collect(caddyhttp.RouteList{*srv.NamedRoutes[n]}, "named route "+n)
	}
	all := []state{{}}
	c.routes(srv.Routes, []state{{}}, where, &all)
	if srv.Errors != nil {
		// The error routes run after an error anywhere on the primary path.
		c.collect(srv.Errors.Routes, where+" errors")
		c.routes(srv.Errors.Routes, onErrorRoute(all), where+" errors", nil)
	}
	for _, x := range c.handlers[first:] {
		if !c.reached[x.id] && !strings.HasPrefix(x.where, "named route") {
			c.fail(fmt.Errorf("%s never runs: every request that reaches it was answered before (by reverse_proxy, respond, file_server… earlier in its route), or its matchers exclude every path that reaches it (in a site or handle block directives are sorted: signed_cookies comes before rewrite and uri); place it before the handler that answers, or use a route block to keep the order as written", x))
		}
	}
	c.appsPartlyManaged()
}

// collect records every signed_cookies handler of a route list, reachable or not.
func (c *composer) collect(list caddyhttp.RouteList, where string) {
	for i := range list {
		rw := where + ", " + routeLabel(i, &list[i])
		for j, hn := range c.handlersOf(&list[i], rw) {
			hw := fmt.Sprintf("%s, handler %d", rw, j)
			switch hn.kind {
			case kindOurs:
				c.found(hn.ours, hw)
			case kindSubroute:
				c.collect(hn.routes, hw+" (subroute)")
				c.collect(hn.errors, hw+" (subroute errors)")
			}
		}
	}
}

// onErrorRoute are the states of requests an error sends to error routes.
func onErrorRoute(ss []state) []state {
	out := make([]state, len(ss))
	for i, s := range ss {
		s.errors, s.covered = true, false
		out[i] = s
	}
	return out
}

// rewrites reports whether a signed_cookies handler of the state rewrites the upstream's
// Set-Cookie lines (it signs, encrypts or has cookie rules): an app answering an error route
// the handler's writer is not on would send them as written.
func (c *composer) rewrites(s state) *handlerAt {
	for _, x := range c.handlers {
		h := x.h
		if x.id < 64 && s.through&(1<<x.id) != 0 && len(h.Sign)+len(h.Encrypt)+len(h.SignFormat)+len(h.Cookie) > 0 {
			return x
		}
	}
	return nil
}

func (c *composer) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// routes follows a route list from the incoming states and returns the states that fall
// through its end. Every state met is added to all, when given (for the error routes).
func (c *composer) routes(list caddyhttp.RouteList, in []state, where string, all *[]state) []state {
	cur := in
	for i := range list {
		r := &list[i]
		var next []state
		rw := where + ", " + routeLabel(i, r)
		matchers := len(r.MatcherSetsRaw) > 0 || len(r.MatcherSets) > 0
		paths, onlyPaths := pathsOf(r)
		for _, s := range cur {
			if r.Group != "" && slices.Contains(strings.Split(s.groups, "\x00"), r.Group) {
				next = append(next, s) // its group already ran a route
				continue
			}
			if onlyPaths && pathsExcluded(s.notPaths, paths) {
				next = append(next, s) // every path it matches was refused by a route before
				continue
			}
			if matchers {
				skipped := s
				if onlyPaths {
					skipped.notPaths = addPaths(s.notPaths, paths)
				}
				next = append(next, skipped) // it may not match
			}
			if onlyPaths {
				if !pathsMayMatch(s.paths, paths) {
					continue // no path matches both this route and one matched before
				}
				s.paths = addPaths(s.paths, paths)
			}
			ran := c.chain(r, s, rw, all)
			if r.Terminal {
				continue // nothing after a terminal route runs
			}
			for _, t := range ran {
				if r.Group != "" {
					t.groups = addGroup(t.groups, r.Group)
				}
				next = append(next, t)
			}
		}
		cur = dedupe(next)
	}
	if all != nil {
		*all = dedupe(append(*all, cur...))
	}
	return cur
}

// pathsOf returns the patterns of a route whose only matcher is a path matcher.
func pathsOf(r *caddyhttp.Route) ([]string, bool) {
	var ps []string
	switch {
	case len(r.MatcherSetsRaw) == 1 && len(r.MatcherSetsRaw[0]) == 1 && r.MatcherSetsRaw[0]["path"] != nil:
		if json.Unmarshal(r.MatcherSetsRaw[0]["path"], &ps) != nil {
			return nil, false
		}
	case len(r.MatcherSets) == 1 && len(r.MatcherSets[0]) == 1:
		switch m := r.MatcherSets[0][0].(type) {
		case caddyhttp.MatchPath:
			ps = m
		case *caddyhttp.MatchPath:
			ps = *m
		default:
			return nil, false
		}
	default:
		return nil, false
	}
	for i := range ps {
		ps[i] = strings.ToLower(ps[i]) // Caddy's path matcher ignores case
	}
	return ps, len(ps) > 0
}

// pathsMayMatch reports whether some path can match one pattern of ps and of every list
// matched before.
func pathsMayMatch(before string, ps []string) bool {
	if before == "" {
		return true
	}
	for list := range strings.SplitSeq(before, "\x00") {
		if !slices.ContainsFunc(strings.Split(list, "\x01"), func(q string) bool {
			return slices.ContainsFunc(ps, func(p string) bool { return engine.PathPatternsOverlap(p, q) })
		}) {
			return false
		}
	}
	return true
}

// pathsExcluded reports whether every pattern of ps matches only paths within one list of
// patterns the request was seen not to match: a route with those paths cannot run.
func pathsExcluded(notPaths string, ps []string) bool {
	if notPaths == "" {
		return false
	}
	for list := range strings.SplitSeq(notPaths, "\x00") {
		refused := strings.Split(list, "\x01")
		if !slices.ContainsFunc(ps, func(p string) bool {
			return !slices.ContainsFunc(refused, func(q string) bool { return patternWithin(p, q) })
		}) {
			return true
		}
	}
	return false
}

// patternWithin reports whether every path pattern p matches is matched by q too: the same
// pattern, or one under q's literal prefix when q is such a prefix and a final *. Escaped
// forms (%) are left out: Caddy matches them against the escaped path.
func patternWithin(p, q string) bool {
	if strings.Contains(p+q, "%") {
		return false
	}
	if p == q || q == "*" {
		return true
	}
	prefix, ok := strings.CutSuffix(q, "*")
	return ok && !strings.ContainsAny(prefix, "*?[\\") && strings.HasPrefix(p, prefix)
}

// routeLabel names a route by its index and, where it has them, its host and path matchers.
func routeLabel(i int, r *caddyhttp.Route) string {
	var sets []string
	for _, set := range r.MatcherSetsRaw {
		var parts []string
		for _, k := range sortedKeys(set) {
			var vs []string
			if (k == "host" || k == "path") && json.Unmarshal(set[k], &vs) == nil {
				parts = append(parts, k+" "+strings.Join(vs, " "))
			} else {
				parts = append(parts, k)
			}
		}
		sets = append(sets, strings.Join(parts, ", "))
	}
	if r.MatcherSetsRaw == nil {
		for _, set := range r.MatcherSets {
			var parts []string
			for _, m := range set {
				switch m := m.(type) {
				case caddyhttp.MatchHost:
					parts = append(parts, "host "+strings.Join(m, " "))
				case *caddyhttp.MatchHost:
					parts = append(parts, "host "+strings.Join(*m, " "))
				case caddyhttp.MatchPath:
					parts = append(parts, "path "+strings.Join(m, " "))
				case *caddyhttp.MatchPath:
					parts = append(parts, "path "+strings.Join(*m, " "))
				case caddy.Module:
					parts = append(parts, m.CaddyModule().ID.Name())
				default:
					parts = append(parts, "matcher")
				}
			}
			sets = append(sets, strings.Join(parts, ", "))
		}
	}
	if len(sets) == 0 {
		return fmt.Sprintf("route %d", i)
	}
	return fmt.Sprintf("route %d [%s]", i, strings.Join(sets, " | "))
}

func addPaths(before string, ps []string) string {
	list := strings.Join(ps, "\x01")
	if before == "" {
		return list
	}
	if slices.Contains(strings.Split(before, "\x00"), list) {
		return before
	}
	return before + "\x00" + list
}

func addGroup(groups, g string) string {
	gs := strings.Split(groups, "\x00")
	if groups == "" {
		gs = nil
	}
	gs = append(gs, g)
	slices.Sort(gs)
	return strings.Join(gs, "\x00")
}

func dedupe(ss []state) []state {
	slices.SortFunc(ss, func(a, b state) int {
		if a.through != b.through {
			if a.through < b.through {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.groups, b.groups); c != 0 {
			return c
		}
		if c := strings.Compare(a.paths, b.paths); c != 0 {
			return c
		}
		return strings.Compare(a.notPaths, b.notPaths)
	})
	ss = slices.Compact(ss)
	if len(ss) > maxStates {
		for i := range ss {
			ss[i].groups, ss[i].paths, ss[i].notPaths = "", "", ""
		}
		ss = dedupe(ss)
	}
	return ss
}

// chain follows one route's handlers from state s; it returns the states at the route's end
// (none when a handler always answers).
func (c *composer) chain(r *caddyhttp.Route, s state, where string, all *[]state) []state {
	cur := []state{s}
	for i, hn := range c.handlersOf(r, where) {
		hw := fmt.Sprintf("%s, handler %d", where, i)
		var next []state
		for _, s := range cur {
			switch hn.kind {
			case kindOurs:
				x := c.found(hn.ours, hw)
				c.reached[x.id] = true
				s.covered = true
				c.readBefore(x, s)
				if x.id >= 64 {
					next = append(next, s) // past what a state holds: checked per request only
					continue
				}
				for _, y := range c.handlers {
					if y.id < 64 && s.through&(1<<y.id) != 0 && !c.seen[[2]int{y.id, x.id}] {
						c.seen[[2]int{y.id, x.id}] = true
						c.onePath[[2]int{y.id, x.id}], c.onePath[[2]int{x.id, y.id}] = true, true
						if err := engine.Compose(y.policy, x.policy); err != nil {
							c.fail(fmt.Errorf("%s and %s are on one request path: %v", y, x, err.(*engine.ConflictError).Why))
						}
					}
				}
				s.through |= 1 << x.id
				next = append(next, s)
			case kindSubroute:
				out := c.routes(hn.routes, []state{s}, hw+" (subroute)", all)
				if hn.errors != nil {
					var inner []state
					c.routes(hn.routes, []state{s}, hw+" (subroute)", &inner)
					out = append(out, c.routes(hn.errors, onErrorRoute(inner), hw+" (subroute errors)", all)...)
				}
				next = append(next, out...)
			case kindInvoke:
				if nr := c.named[hn.name]; nr != nil {
					next = append(next, c.routes(caddyhttp.RouteList{*nr}, []state{s}, "named route "+hn.name, all)...)
				}
			case kindResponder:
				// answers: nothing after it in this route runs
				if x := c.rewrites(s); hn.proxies && s.errors && !s.covered && x != nil {
					c.fail(fmt.Errorf("%s (handle_errors) answers errors of requests %s handled with %s, which no signed_cookies handler covers there: "+
						"the app's Set-Cookie lines would leave as written, unsigned; put signed_cookies (the same configuration) in handle_errors before %s", hw, x, hn.name, hn.name))
				}
				if hn.proxies && !s.errors {
					c.proxied(hn, s, hw)
				}
			case kindRewrite:
				s.paths, s.notPaths = "", ""
				next = append(next, s)
			default:
				if len(hn.cookies) > 0 {
					s.cookies = addCookieReads(s.cookies, hn.cookies, hw+" ("+hn.name+")")
				}
				next = append(next, s)
			}
		}
		cur = dedupe(next)
		if all != nil {
			*all = dedupe(append(*all, cur...))
		}
	}
	return cur
}

// proxied checks a request reaching reverse_proxy: its load balancing must not stick on the
// visitor cookie (which the module keeps the app from setting) nor on a visitor ID header the
// handlers on its path do not send; and it notes which handlers the request went through, so
// that an app reached both through a handler and around it is reported.
func (c *composer) proxied(hn handlerNode, s state, where string) {
	var trackers []*handlerAt
	for _, x := range c.handlers {
		if x.id < 64 && s.through&(1<<x.id) != 0 && x.h.Track != nil {
			trackers = append(trackers, x)
		}
	}
	for _, x := range trackers {
		if hn.lbCookie != "" && hn.lbCookie == x.h.Track.Name {
			c.fail(fmt.Errorf("reverse_proxy (%s): lb_policy cookie %s and %s use one cookie name: the module keeps the app (reverse_proxy included) from setting the visitor cookie, so no request would stick; "+
				"stick on the visitor ID instead (lb_policy header %s, from the first request on), or give lb_policy cookie another name", where, hn.lbCookie, x, cmpOr(x.h.Track.Header, defaultIDHeader)))
		}
	}
	if hn.lbHeader != "" && len(trackers) > 0 && !slices.ContainsFunc(trackers, func(x *handlerAt) bool { return strings.EqualFold(x.h.Track.Header, hn.lbHeader) }) &&
		strings.EqualFold(hn.lbHeader, defaultIDHeader) {
		key := "lb header\x00" + where
		if !c.warned[key] {
			c.warned[key] = true
			c.logger.Warn("reverse_proxy's lb_policy header names the default visitor ID header, which the signed_cookies handler before it does not send (its track header is renamed or off): requests stick on whatever the client sends, or not at all; use lb_policy header with the track header's name",
				zap.String("reverse_proxy", where), zap.String("lb_policy_header", hn.lbHeader), zap.String("track_header", trackers[0].h.Track.Header), zap.String("signed_cookies", trackers[0].String()))
		}
	}
	app := where
	if len(hn.dials) > 0 {
		app = strings.Join(slices.Sorted(slices.Values(hn.dials)), " ")
	}
	c.apps[app] = append(c.apps[app], appReach{through: s.through, where: where})
}

// manages reports whether a handler changes what the app's cookies are: it signs, encrypts,
// checks a Flask session or rewrites attributes.
func (x *handlerAt) manages() bool {
	h := x.h
	return len(h.Sign)+len(h.Encrypt)+len(h.SignFormat)+len(h.Cookie) > 0 || h.FlaskSession != nil
}

// appsPartlyManaged warns about apps that some requests reach through a signed_cookies
// handler managing their cookies and others reach around it: a path matcher on the handler
// that leaves the rest of the site to the same app, or a rewrite that sends a path the
// matcher skipped there. On those requests the app's Set-Cookie lines leave as written and
// the client's cookies reach it unverified.
func (c *composer) appsPartlyManaged() {
	var managing uint64
	for _, x := range c.handlers {
		if x.id < 64 && x.manages() {
			managing |= 1 << x.id
		}
	}
	for _, app := range sortedKeys(c.apps) {
		reaches := c.apps[app]
		i := slices.IndexFunc(reaches, func(r appReach) bool { return r.through&managing == 0 })
		if i < 0 {
			continue
		}
		around := reaches[i]
		for _, x := range c.handlers {
			if x.id >= 64 || managing&(1<<x.id) == 0 || !slices.ContainsFunc(reaches, func(r appReach) bool { return r.through&(1<<x.id) != 0 }) {
				continue
			}
			key := "partly\x00" + app + "\x00" + x.where
			if c.warned[key] {
				continue
			}
			c.warned[key] = true
			c.logger.Warn("an app reached both through signed_cookies and around it: requests its matcher skips (other paths of the site, or paths a rewrite sends there) get the app's Set-Cookie lines as written, unsigned, and reach it with the client's cookies unverified; "+
				"give signed_cookies no matcher, or place it where every route to this app passes (before the rewrite, outside the handle block)",
				zap.String("app", app), zap.String("signed_cookies", x.String()), zap.String("reached_around_it_at", around.where))
		}
	}
}

// found returns the record of a signed_cookies handler, made the first time it is met.
func (c *composer) found(h *Handler, where string) *handlerAt {
	for _, x := range c.handlers {
		if x.where == where {
			return x
		}
	}
	x := &handlerAt{h: h, policy: h.policy, where: where, id: len(c.handlers)}
	if x.policy == nil {
		// not provisioned yet: compiled as its Provision will, without keys
		out, err := h.compile(compileKeys{})
		if err != nil {
			x.policy, _ = engine.New(engine.Config{Name: h.describe()}) // its own Provision reports the error
		} else {
			x.policy = out.policy
		}
	}
	c.handlers = append(c.handlers, x)
	if c.plain {
		for _, need := range h.needsSecure() {
			c.logger.Warn("a cookie that needs the Secure attribute on a server without TLS: unless TLS ends at a proxy in front of Caddy, browsers (other than on localhost) refuse it",
				zap.String("handler", x.String()), zap.String("cookie", need.cookie), zap.String("because", need.why))
		}
	}
	return x
}

// sharedKeys warns about handlers that share keys without a realm and manage one cookie
// name on different request paths (different sites, say): each accepts the cookies the other
// issued. Handlers met on one path share the name by design (checked above).
func (c *composer) sharedKeys() {
	for i, x := range c.handlers {
		for _, y := range c.handlers[i+1:] {
			if x.h.Realm != "" || y.h.Realm != "" || x.h.keySource() != y.h.keySource() || x.where == y.where || c.onePath[[2]int{x.id, y.id}] {
				continue
			}
			if name := sharedName(x.h, y.h); name != "" {
				c.logger.Warn("two handlers share keys and a cookie name without a realm: each accepts the cookies the other issued; "+
					"give a realm to the site that has no users yet (the new one): setting a realm on a live site invalidates every cookie it issued so far "+
					"(every visitor gets a new ID, signed cookies are dropped, users are logged out); if both are live, give it to the one whose cookies are cheapest to lose",
					zap.String("cookie", name), zap.String("first", x.String()), zap.String("second", y.String()))
			}
		}
	}
}

// keySource identifies the keys a handler uses, as configured.
func (h *Handler) keySource() string {
	if len(h.Secrets) > 0 {
		return "secrets:" + strings.Join(h.Secrets, " ")
	}
	return "storage:" + string(h.StorageRaw)
}

func sharedName(a, b *Handler) string {
	names := func(h *Handler) []string {
		n := append(append([]string{}, h.Sign...), h.Encrypt...)
		if h.Track != nil {
			n = append(n, h.Track.Name)
		}
		return n
	}
	for _, x := range names(a) {
		for _, y := range names(b) {
			if engine.PatternsOverlap(x, y) {
				return x
			}
		}
	}
	return ""
}

// secureNeed is a cookie that needs the Secure attribute, and why.
type secureNeed struct{ cookie, why string }

// needsSecure lists the handler's cookies that need the Secure attribute.
func (h *Handler) needsSecure() []secureNeed {
	var out []secureNeed
	for _, c := range h.Cookie {
		names := strings.Join(c.Names, " ")
		switch {
		case c.Prefix != "":
			out = append(out, secureNeed{names, "cookie: prefix " + c.Prefix})
		case strings.EqualFold(c.SameSite, "none"):
			out = append(out, secureNeed{names, "cookie: same_site none"})
		case c.Partitioned != nil && *c.Partitioned:
			out = append(out, secureNeed{names, "cookie: partitioned"})
		case c.Secure != nil && *c.Secure:
			out = append(out, secureNeed{names, "cookie: secure"})
		}
	}
	if t := h.Track; t != nil {
		switch {
		case strings.HasPrefix(t.Name, "__Host-"), strings.HasPrefix(t.Name, "__Secure-"):
			out = append(out, secureNeed{t.Name, "track: the name's prefix (every request would get a new visitor ID)"})
		case strings.EqualFold(t.SameSite, "none"):
			out = append(out, secureNeed{t.Name, "track: same_site none (every request would get a new visitor ID)"})
		case t.Partitioned:
			out = append(out, secureNeed{t.Name, "track: partitioned (every request would get a new visitor ID)"})
		case strings.EqualFold(t.Secure, "on"):
			out = append(out, secureNeed{t.Name, "track: secure on (every request would get a new visitor ID)"})
		}
	}
	return out
}

type handlerKind uint8

const (
	kindOther handlerKind = iota
	kindOurs
	kindSubroute
	kindInvoke
	kindResponder
	kindRewrite // changes the request's path: the path matchers met before no longer hold
)

type handlerNode struct {
	kind           handlerKind
	ours           *Handler
	routes, errors caddyhttp.RouteList
	name           string   // the module's name (a named route's for invoke)
	proxies        bool     // reverse_proxy: the app answers, its Set-Cookie lines included
	cookies        []string // the request cookies whose placeholders the handler reads
	// reverse_proxy only: its static upstreams, and the cookie or header its load balancing
	// sticks on (lb_policy cookie <name>, lb_policy header <field>).
	dials              []string
	lbCookie, lbHeader string
}

// proxyHead is what the composition reads of reverse_proxy's JSON.
type proxyHead struct {
	Upstreams []struct {
		Dial string `json:"dial"`
	} `json:"upstreams"`
	LoadBalancing *struct {
		SelectionPolicy *struct {
			Policy string `json:"policy"`
			Name   string `json:"name"`
			Field  string `json:"field"`
		} `json:"selection_policy"`
	} `json:"load_balancing"`
}

// readProxy fills in a reverse_proxy node from its JSON.
func (n *handlerNode) readProxy(raw []byte) {
	var p proxyHead
	if json.Unmarshal(raw, &p) != nil {
		return
	}
	for _, u := range p.Upstreams {
		n.dials = append(n.dials, u.Dial)
	}
	if lb := p.LoadBalancing; lb != nil && lb.SelectionPolicy != nil {
		switch sp := lb.SelectionPolicy; sp.Policy {
		case "cookie":
			n.lbCookie = cmpOr(sp.Name, "lb") // reverse_proxy's default
		case "header":
			n.lbHeader = sp.Field
		}
	}
}

// readProvisionedProxy fills in a reverse_proxy node from the provisioned handler, whose
// load-balancing JSON Caddy has dropped.
func (n *handlerNode) readProvisionedProxy(rp *reverseproxy.Handler) {
	for _, u := range rp.Upstreams {
		n.dials = append(n.dials, u.Dial)
	}
	if rp.LoadBalancing == nil {
		return
	}
	switch sp := rp.LoadBalancing.SelectionPolicy.(type) {
	case *reverseproxy.CookieHashSelection:
		n.lbCookie = cmpOr(sp.Name, "lb")
	case *reverseproxy.HeaderHashSelection:
		n.lbHeader = sp.Field
	}
}

// cookiePlaceholder finds the placeholders of request cookies in a handler's configuration.
var cookiePlaceholder = regexp.MustCompile(`\{http\.request\.cookie\.([^{}]+)\}`)

// cookiesRead lists the request cookies whose placeholders a handler's JSON holds.
func cookiesRead(js []byte) []string {
	var out []string
	for _, m := range cookiePlaceholder.FindAllSubmatch(js, -1) {
		if n := string(m[1]); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// addCookieReads adds to a state's reads the cookies a handler reads, with where.
func addCookieReads(reads string, cookies []string, where string) string {
	list := strings.Split(reads, "\x00")
	if reads == "" {
		list = nil
	}
	for _, n := range cookies {
		entry := n + "\x01" + where
		if !slices.Contains(list, entry) {
			list = append(list, entry)
		}
	}
	slices.Sort(list)
	return strings.Join(list, "\x00")
}

// readBefore warns about cookies whose placeholders a handler read before x, which manages
// them, verified them: the placeholder held the client's value, forged or not.
func (c *composer) readBefore(x *handlerAt, s state) {
	if s.cookies == "" {
		return
	}
	for entry := range strings.SplitSeq(s.cookies, "\x00") {
		name, where, _ := strings.Cut(entry, "\x01")
		if x.policy.Inspect(name, nil, 0).Kind == "" {
			continue
		}
		key := name + "\x00" + where + "\x00" + x.where
		if c.warned[key] {
			continue
		}
		c.warned[key] = true
		c.logger.Warn("a handler reads a cookie's placeholder before signed_cookies verifies the cookie: it gets the client's value, forged or not; "+
			"place that handler after signed_cookies (in a route block), or read the value the upstream gets",
			zap.String("placeholder", "{http.request.cookie."+name+"}"), zap.String("read_by", where), zap.String("signed_cookies", x.String()))
	}
}

// responders always answer (or fail) without calling the next handler.
var responders = map[string]bool{
	"static_response": true, "reverse_proxy": true, "error": true, "copy_response": true,
	"acme_server": true, "metrics": true,
}

// handlersOf reads a route's handlers, provisioned or still in JSON (once per route).
func (c *composer) handlersOf(r *caddyhttp.Route, where string) []handlerNode {
	if hs, ok := c.nodes[where]; ok {
		return hs
	}
	hs := readHandlers(r)
	c.nodes[where] = hs
	return hs
}

func readHandlers(r *caddyhttp.Route) []handlerNode {
	var out []handlerNode
	if r.HandlersRaw != nil {
		for _, raw := range r.HandlersRaw {
			var head struct {
				Handler  string                                `json:"handler"`
				Routes   caddyhttp.RouteList                   `json:"routes"`
				Errors   *struct{ Routes caddyhttp.RouteList } `json:"errors"`
				Name     string                                `json:"name"`
				PassThru bool                                  `json:"pass_thru"`
			}
			_ = json.Unmarshal(raw, &head)
			n := handlerNode{}
			switch {
			case head.Handler == "signed_cookies":
				h := new(Handler)
				if json.Unmarshal(raw, h) == nil {
					h.setDefaults()
					n = handlerNode{kind: kindOurs, ours: h}
				}
			case head.Handler == "subroute":
				n = handlerNode{kind: kindSubroute, routes: head.Routes}
				if head.Errors != nil {
					n.errors = head.Errors.Routes
				}
			case head.Handler == "invoke":
				n = handlerNode{kind: kindInvoke, name: head.Name}
			case head.Handler == "file_server" && !head.PassThru, responders[head.Handler]:
				n.kind = kindResponder
			case head.Handler == "rewrite":
				n.kind = kindRewrite
			}
			if n.kind != kindInvoke {
				n.name = head.Handler
			}
			if n.kind != kindOurs && n.kind != kindSubroute {
				n.cookies = cookiesRead(raw)
			}
			if n.proxies = head.Handler == "reverse_proxy"; n.proxies {
				n.readProxy(raw)
			}
			out = append(out, n)
		}
		return out
	}
	for _, mh := range r.Handlers {
		n := handlerNode{}
		switch v := mh.(type) {
		case *Handler:
			n = handlerNode{kind: kindOurs, ours: v}
		case *caddyhttp.Subroute:
			n = handlerNode{kind: kindSubroute, routes: v.Routes}
			if v.Errors != nil {
				n.errors = v.Errors.Routes
			}
		case *caddyhttp.Invoke:
			n = handlerNode{kind: kindInvoke, name: v.Name}
		default:
			if m, ok := mh.(caddy.Module); ok {
				id := m.CaddyModule().ID.Name()
				fs, isFileServer := mh.(*fileserver.FileServer)
				switch {
				case responders[id] || isFileServer && !fs.PassThru:
					n.kind = kindResponder
				case id == "rewrite":
					n.kind = kindRewrite
				}
				n.name, n.proxies = id, id == "reverse_proxy"
				if js, err := json.Marshal(mh); err == nil {
					n.cookies = cookiesRead(js)
				}
				if rp, ok := mh.(*reverseproxy.Handler); ok {
					n.readProvisionedProxy(rp)
				}
			}
		}
		out = append(out, n)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
