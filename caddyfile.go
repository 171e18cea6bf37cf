package signedcookies

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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
//	    }
//	    sign    <name|glob>...
//	    encrypt <name|glob>...
//	    max_age <duration>
//	    on_invalid drop|reject
//	}
//
// With no track, sign or encrypt at all, the directive tracks visitors with the defaults.
// Placeholders in secret are kept as written and resolved at Provision.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return d.Errf("duplicate subdirective %q", sub)
		}
		seen[sub] = true
		switch sub {
		case "secret":
			h.Secrets = d.RemainingArgs()
			if len(h.Secrets) == 0 {
				return d.ArgErr()
			}
		case "realm":
			if !d.AllArgs(&h.Realm) {
				return d.ArgErr()
			}
		case "rotate":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			h.Rotate = dur
		case "check_interval":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			h.CheckInterval = dur
		case "storage":
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
		case "track":
			t, err := parseTrack(d)
			if err != nil {
				return err
			}
			h.Track = t
		case "sign":
			h.Sign = d.RemainingArgs()
			if len(h.Sign) == 0 {
				return d.ArgErr()
			}
		case "encrypt":
			h.Encrypt = d.RemainingArgs()
			if len(h.Encrypt) == 0 {
				return d.ArgErr()
			}
		case "max_age":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			h.MaxAge = dur
		case "on_invalid":
			v, err := oneOf(d, "drop", "reject")
			if err != nil {
				return err
			}
			h.OnInvalid = v
		default:
			return d.Errf("unrecognized subdirective %q", sub)
		}
	}
	if h.Track == nil && len(h.Sign) == 0 && len(h.Encrypt) == 0 {
		h.Track = &Track{}
	}
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
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return nil, d.Errf("track: duplicate subdirective %q", sub)
		}
		seen[sub] = true
		var err error
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
			t.Forward, err = oneOf(d, "plain", "strip")
		case "secure":
			t.Secure, err = oneOf(d, "auto", "on", "off")
		case "http_only":
			var v string
			if v, err = oneOf(d, "on", "off"); err == nil {
				on := v == "on"
				t.HTTPOnly = &on
			}
		case "same_site":
			t.SameSite, err = oneOf(d, "lax", "strict", "none")
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
		default:
			return nil, d.Errf("track: unrecognized subdirective %q", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return t, nil
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

func oneOf(d *caddyfile.Dispenser, allowed ...string) (string, error) {
	sub := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return "", err
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", d.Errf("%s: %q is not one of %v", sub, v, allowed)
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
