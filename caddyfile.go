package signedcookies

import (
	"iter"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/signedcookies/caddy-signedcookies/internal/engine"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("signed_cookies", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("signed_cookies", httpcaddyfile.Before, "header")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var sc Handler
	err := sc.UnmarshalCaddyfile(h.Dispenser)
	return &sc, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	signed_cookies [<matcher>] {
//	    secret <base64> [<base64>...]
//	    realm <name>
//	    rotate <interval>
//	    check_interval <interval>
//	    storage <module> { ... }
//	    track [<name>] {
//	        max_age  <duration>
//	        refresh  <duration>
//	        domain   <domain>
//	        path     <path>
//	        header   <field>|off
//	        forward  plain|strip
//	        secure   auto|on|off
//	        http_only on|off
//	        same_site lax|strict|none
//	        partitioned
//	        encrypt
//	        honor_gpc
//	        consent  <cookie>[=<value>]
//	        when     <matchers...>
//	        adopt_nginx <name> until <date|time>
//	        id_format uuid|nginx
//	        format itsdangerous
//	        secret_key <key>...
//	        salt <salt>
//	    }
//	    sign    <name|glob>... [{
//	        format itsdangerous
//	        secret_key <key>...
//	        salt <salt>
//	    }]
//	    flask_session [<cookie-name>] {
//	        secret_key <key>...
//	        salt <salt>
//	        max_age <duration>
//	        expose <key>...
//	        header_prefix <prefix>|off
//	        on_invalid drop|reject|pass
//	    }
//	    encrypt <name|glob>...
//	    max_age <duration>
//	    on_invalid drop|reject
//	    cookie <name|glob>... {
//	        secure | -secure
//	        http_only | -http_only
//	        same_site lax|strict|none | -same_site
//	        partitioned | -partitioned
//	        domain <from> <to>|-
//	        path <from-prefix> <to-prefix>
//	        prefix __Host-|__Secure-
//	        split [<max-cookies>]
//	        needs_consent
//	    }
//	    adopt <name|glob>... until <date|time> [{
//	        attributes <Set-Cookie attributes>
//	    }]
//	    unwrap
//	}
//
// secret, sign, encrypt, cookie and adopt may be repeated, adding to the list. Keywords compare without
// case (same_site Lax). With no track, sign or encrypt at all, the directive tracks visitors
// with the defaults. Placeholders are kept as written and resolved at Provision; every other
// value is checked here, with the words Provision would use.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for sub, err := range subdirectives(d, d.Nesting(), false, "", nil, "secret", "sign", "encrypt", "adopt", "cookie") {
		if err != nil {
			return err
		}
		switch sub {
		case "secret":
			if !d.NextArg() {
				// what an unset {$NAME} leaves: the Caddyfile expands those while it is read
				return d.Errf("secret: no value: give a secret made with `caddy signed-cookies secret` as {env.NAME} (read when the config loads, so the key never enters the adapted config); a {$NAME} the environment does not set leaves nothing here")
			}
			d.Prev()
			err = appendArgs(d, &h.Secrets)
		case "sign":
			var names []string
			if err = appendArgs(d, &names); err != nil {
				break
			}
			if nesting := d.Nesting(); d.NextBlock(nesting) {
				var f SignFormat
				if f, err = parseSignFormat(d, names, nesting); err == nil {
					h.SignFormat = append(h.SignFormat, f)
				}
			} else {
				h.Sign = append(h.Sign, names...)
			}
		case "flask_session":
			if h.FlaskSession != nil {
				return d.Errf("duplicate subdirective %q", sub)
			}
			h.FlaskSession, err = parseFlaskSession(d)
		case "encrypt":
			var names []string
			if err = appendArgs(d, &names); err != nil {
				break
			}
			if nesting := d.Nesting(); d.NextBlock(nesting) {
				return d.Errf("encrypt takes no block: list the names (encrypt %s); for their attributes add `cookie %s { … }` beside it, and to sign in itsdangerous' format use `sign <name> { format itsdangerous … }`",
					strings.Join(names, " "), strings.Join(names, " "))
			}
			h.Encrypt = append(h.Encrypt, names...)
		case "realm":
			h.Realm, err = oneArg(d)
		case "rotate":
			h.Rotate, err = parseDuration(d)
		case "check_interval":
			h.CheckInterval, err = parseDuration(d)
		case "storage":
			err = h.parseStorage(d)
		case "track":
			h.Track, err = parseTrack(d)
		case "max_age":
			h.MaxAge, err = parseDuration(d)
		case "on_invalid":
			h.OnInvalid, err = keyword(d, "on_invalid", "drop", "reject")
		case "adopt":
			var a Adoption
			if a, err = parseAdopt(d); err == nil {
				h.Adopt = append(h.Adopt, a)
			}
		case "unwrap":
			h.Unwrap, err = noArgs(d)
		case "cookie":
			var c CookieRule
			if c, err = parseCookieRule(d); err == nil {
				h.Cookie = append(h.Cookie, c)
			}
		default:
			return d.Errf("unrecognized subdirective %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return h.checkParsed(d)
}

// checkParsed runs the configuration checks and the compile on a copy with the defaults, as
// Provision will, with stand-in keys.
func (h *Handler) checkParsed(d *caddyfile.Dispenser) error {
	c := *h
	if h.Track != nil {
		t := *h.Track
		c.Track = &t
	}
	if h.FlaskSession != nil {
		f := *h.FlaskSession
		c.FlaskSession = &f
	}
	c.setDefaults()
	if err := c.check(); err != nil {
		return d.Errf("%v", err)
	}
	if _, err := c.compile(compileKeys{}); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

func (h *Handler) parseStorage(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	name := d.Val()
	unm, err := caddyfile.UnmarshalModule(d, "caddy.storage."+name)
	if err != nil {
		return err
	}
	st, ok := unm.(caddy.StorageConverter)
	if !ok {
		return d.Errf("module %s is not a storage module", name)
	}
	h.StorageRaw = caddyconfig.JSONModuleObject(st, "module", name, nil)
	return nil
}

func parseTrack(d *caddyfile.Dispenser) (*Track, error) {
	t := &Track{}
	if d.NextArg() {
		t.Name = d.Val()
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for sub, err := range subdirectives(d, d.Nesting(), false, "track: ", nil) {
		if err != nil {
			return nil, err
		}
		switch sub {
		case "max_age":
			t.MaxAge, err = parseDuration(d)
		case "refresh":
			t.Refresh, err = parseDuration(d)
		case "domain":
			t.Domain, err = oneArg(d)
		case "path":
			t.Path, err = oneArg(d)
		case "header":
			t.Header, err = oneArg(d)
		case "forward":
			t.Forward, err = keyword(d, "track: forward", "plain", "strip")
		case "secure":
			t.Secure, err = keyword(d, "track: secure", "auto", "on", "off")
		case "http_only":
			var v string
			if v, err = keyword(d, "track: http_only", "on", "off"); err == nil {
				on := v == "on"
				t.HTTPOnly = &on
			}
		case "same_site":
			t.SameSite, err = keyword(d, "track: same_site", "lax", "strict", "none")
		case "partitioned":
			t.Partitioned, err = noArgs(d)
		case "encrypt":
			t.Encrypt, err = noArgs(d)
		case "honor_gpc":
			t.HonorGPC, err = noArgs(d)
		case "consent":
			t.Consent, err = oneArg(d)
		case "when":
			t.WhenRaw, err = caddyhttp.ParseCaddyfileNestedMatcherSet(d)
		case "adopt_nginx":
			args := d.RemainingArgs()
			if len(args) != 3 || args[1] != "until" {
				return nil, d.Errf("track: adopt_nginx: want <name> until <date|time>")
			}
			t.AdoptNginx = &AdoptNginx{Name: args[0], Until: args[2]}
		case "id_format":
			t.IDFormat, err = keyword(d, "track: id_format", "uuid", "nginx")
		case "format":
			t.Format, err = keyword(d, "track: format", "itsdangerous")
		case "secret_key":
			err = appendArgs(d, &t.SecretKey)
		case "salt":
			t.Salt, err = oneArg(d)
		default:
			return nil, d.Errf("track: unrecognized subdirective %q", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

// parseSignFormat reads the block of `sign <names> { format … }`; the dispenser is on its
// first subdirective.
func parseSignFormat(d *caddyfile.Dispenser, names []string, nesting int) (SignFormat, error) {
	f := SignFormat{Names: names}
	for sub, err := range subdirectives(d, nesting, true, "sign: ", nil) {
		if err != nil {
			return f, err
		}
		switch sub {
		case "format":
			f.Format, err = keyword(d, "sign: format", "itsdangerous")
		case "secret_key":
			err = appendArgs(d, &f.SecretKey)
		case "salt":
			f.Salt, err = oneArg(d)
		default:
			return f, d.Errf("sign: unrecognized subdirective %q", sub)
		}
		if err != nil {
			return f, err
		}
	}
	return f, nil
}

// parseFlaskSession reads `flask_session [<name>] { … }`.
func parseFlaskSession(d *caddyfile.Dispenser) (*FlaskSession, error) {
	f := &FlaskSession{}
	if d.NextArg() {
		f.Name = d.Val()
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for sub, err := range subdirectives(d, d.Nesting(), false, "flask_session: ", nil) {
		if err != nil {
			return nil, err
		}
		switch sub {
		case "secret_key":
			err = appendArgs(d, &f.SecretKey)
		case "salt":
			f.Salt, err = oneArg(d)
		case "max_age":
			f.MaxAge, err = parseDuration(d)
		case "expose":
			err = appendArgs(d, &f.Expose)
		case "header_prefix":
			f.HeaderPrefix, err = oneArg(d)
		case "on_invalid":
			f.OnInvalid, err = keyword(d, "flask_session: on_invalid", "drop", "reject", "pass")
		default:
			return nil, d.Errf("flask_session: unrecognized subdirective %q", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}

// parseCookieRule reads a cookie block: flags and their negations (-secure), rewrites, a
// prefix, split and needs_consent.
func parseCookieRule(d *caddyfile.Dispenser) (CookieRule, error) {
	c := CookieRule{Names: d.RemainingArgs()}
	if len(c.Names) == 0 {
		return c, d.ArgErr()
	}
	flag := func(v **bool, on bool) error {
		if d.NextArg() {
			return d.ArgErr()
		}
		*v = &on
		return nil
	}
	unnegated := func(sub string) string { return strings.TrimPrefix(sub, "-") } // secure and -secure are one setting
	for sub, err := range subdirectives(d, d.Nesting(), false, "cookie: ", unnegated) {
		if err != nil {
			return c, err
		}
		switch sub {
		case "secure", "-secure":
			err = flag(&c.Secure, sub == "secure")
		case "http_only", "-http_only":
			err = flag(&c.HTTPOnly, sub == "http_only")
		case "partitioned", "-partitioned":
			err = flag(&c.Partitioned, sub == "partitioned")
		case "same_site":
			c.SameSite, err = keyword(d, "cookie: same_site", "lax", "strict", "none")
		case "-same_site":
			c.SameSite = "-"
			_, err = noArgs(d)
		case "domain":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return c, d.Errf("cookie: domain: want <from> <to>, or - for <to> to remove it")
			}
			c.Domain = &Rewrite{From: args[0], To: args[1]}
		case "path":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return c, d.Errf("cookie: path: want <from-prefix> <to-prefix>")
			}
			c.Path = &Rewrite{From: args[0], To: args[1]}
		case "prefix":
			c.Prefix, err = oneArg(d)
		case "split":
			c.Split = true
			if d.NextArg() {
				if c.SplitCookies, err = strconv.Atoi(d.Val()); err != nil || c.SplitCookies < 2 || c.SplitCookies > engine.MaxSplitCookies {
					return c, d.Errf("cookie: split: %q is not a number of cookies from 2 to %d", d.Val(), engine.MaxSplitCookies)
				}
				if d.NextArg() {
					return c, d.ArgErr()
				}
			}
		case "needs_consent":
			c.NeedsConsent, err = noArgs(d)
		default:
			return c, d.Errf("cookie: unrecognized subdirective %q", sub)
		}
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

// parseAdopt reads `adopt <name|glob>... until <date|time>`, with an optional block giving
// the cookies' attributes.
func parseAdopt(d *caddyfile.Dispenser) (Adoption, error) {
	var a Adoption
	args := d.RemainingArgs()
	if len(args) < 3 || args[len(args)-2] != "until" {
		return a, d.Errf("adopt: want <name|glob>... until <date|time>")
	}
	a.Cookies, a.Until = args[:len(args)-2], args[len(args)-1]
	for sub, err := range subdirectives(d, d.Nesting(), false, "adopt: ", nil) {
		if err != nil {
			return a, err
		}
		switch sub {
		case "attributes":
			if a.Attributes, err = oneArg(d); err != nil {
				return a, err
			}
		default:
			return a, d.Errf("adopt: unrecognized subdirective %q", sub)
		}
	}
	return a, nil
}

// subdirectives yields the subdirectives of a block (nesting is the level before it; started:
// the dispenser is on the first one already), or an error for one given twice, unless
// repeatable. setting maps a subdirective to the setting it is (nil: itself); what prefixes
// errors ("track: ").
func subdirectives(d *caddyfile.Dispenser, nesting int, started bool, what string, setting func(string) string, repeatable ...string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		seen := map[string]bool{}
		for first := started; first || d.NextBlock(nesting); first = false {
			sub := d.Val()
			if sub == "{" {
				// a block after a line that takes none: "unrecognized subdirective {" would
				// send the reader looking for a typo
				yield(sub, d.Errf("%sa block where none is allowed: the line before it takes no block", what))
				return
			}
			key := sub
			if setting != nil {
				key = setting(sub)
			}
			if seen[key] && !slices.Contains(repeatable, key) {
				yield(sub, d.Errf("%sduplicate subdirective %q", what, key))
				return
			}
			seen[key] = true
			if !yield(sub, nil) {
				return
			}
		}
	}
}

// appendArgs adds the remaining arguments (at least one) to a list.
func appendArgs(d *caddyfile.Dispenser, list *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*list = append(*list, args...)
	return nil
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

// keyword reads one of the allowed keywords, in any case; it returns it in lower case.
func keyword(d *caddyfile.Dispenser, field string, allowed ...string) (string, error) {
	v, err := oneArg(d)
	if err != nil {
		return "", err
	}
	v = strings.ToLower(v)
	if err := oneOf(field, v, allowed...); err != nil {
		return "", d.Errf("%v", err)
	}
	return v, nil
}

func noArgs(d *caddyfile.Dispenser) (bool, error) {
	if d.NextArg() {
		return false, d.ArgErr()
	}
	return true, nil
}

func parseDuration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	sub := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: bad duration %s: %v", sub, strconv.Quote(v), err)
	}
	if dur <= 0 {
		return 0, d.Errf("%s: duration %s must be positive", sub, strconv.Quote(v))
	}
	return caddy.Duration(dur), nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
