// The inspect subcommand: whether a cookie value verifies under each handler of the config
// that manages its name, and why not.

package signedcookies

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/engine"
	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
	"github.com/spf13/cobra"
)

func cliInspectCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect --name <cookie> [--config <path>] [--adapter <name>] [--" + cliValueFlag + "] <value>",
		Short: "Says whether a cookie value verifies under the config's keys",
		Long: `
Checks <value> (- reads it from stdin) as the cookie called --name, as the client holds it
(with a __Host- or __Secure- prefix that a cookie rule adds), under each signed_cookies
handler of the config that manages that name: the visitor cookie (track), sign, encrypt,
sign with format itsdangerous, flask_session. Keys come from the handler's secrets, their
{env.*} and {file.*} placeholders resolved as Caddy does, or from the storage key ring,
read from the handler's storage or the config's (nothing is created or changed), with the
handler's realm.

For each handler it prints whether the value verifies and, if not, why (bad_mac, expired,
malformed, too_long), when it was signed and how old it is, which secret verified it (for
the storage key ring also its dates), whether the value is encrypted, and the visitor ID
as a UUID. The decoded value of other cookies is shown only with --` + cliValueFlag + `.

Exit status: 0 when the value verifies under at least one handler, 1 when under none,
2 for usage and config errors, a key ring that cannot be read, and a name no handler
manages.
`,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := cliInspect(cmd, args)
			return cliExit(cmd, code, err)
		},
	}
	cmd.Flags().StringP("name", "n", "", "Name of the cookie, as the client holds it")
	cmd.Flags().StringP("config", "c", "", "Configuration file (default: the Caddyfile in the current directory)")
	cmd.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	cmd.Flags().Bool(cliValueFlag, false, "Print the decoded value of a cookie that verifies")
	return cmd
}

// cliCookieUse is how a handler manages a cookie name.
type cliCookieUse struct {
	kind    string // track, encrypt, sign, itsdangerous, flask_session
	app     string // the name the upstream knows (a transparent prefix removed)
	pattern string // the configured name or glob that matches
	format  *SignFormat
	split   bool
	refused string // why the handler refuses the name outright
}

// cliUse finds how h manages the cookie the client holds as browser, in the engine's order (the
// visitor cookie, encrypt, sign, other formats, the Flask session; the first match wins). A
// cookie rule's transparent prefix is stripped to find the rule, as on a request.
func (h *Handler) cliUse(browser string) (cliCookieUse, bool) {
	rules := make([]engine.CookieRule, len(h.Cookie))
	for i, c := range h.Cookie {
		rules[i] = c.engineRule()
	}
	app, i, refused := engine.RuleFor(rules, browser)
	u := cliCookieUse{app: app, split: i >= 0 && h.Cookie[i].Split}
	if refused {
		pre := h.Cookie[i].Prefix
		u.refused = fmt.Sprintf("its cookie rule adds the prefix %s, so the client must hold it as %s%s: the unprefixed name, which a sibling subdomain could set, is refused", pre, pre, browser)
	}
	match := func(patterns []string) bool {
		for _, p := range patterns {
			if ok, _ := path.Match(p, app); ok {
				u.pattern = p
				return true
			}
		}
		return false
	}
	switch {
	case h.Track != nil && h.Track.Name == app:
		u.kind, u.pattern, u.split = "track", app, false
	case match(h.Encrypt):
		u.kind = "encrypt"
	case match(h.Sign):
		u.kind = "sign"
	default:
		for i := range h.SignFormat {
			if match(h.SignFormat[i].Names) {
				u.kind, u.format = "itsdangerous", &h.SignFormat[i]
				return u, true
			}
		}
		if f := h.FlaskSession; f != nil && f.Name == app {
			u.kind, u.pattern = "flask_session", app
			return u, true
		}
		return u, false
	}
	return u, true
}

func (u cliCookieUse) describe(h *Handler) string {
	switch u.kind {
	case "track":
		if h.Track.Encrypt {
			return fmt.Sprintf("track %s: the visitor cookie, signed and encrypted", u.pattern)
		}
		if h.Track.Format == "itsdangerous" {
			return fmt.Sprintf("track %s: the visitor cookie, signed in itsdangerous' format (not encrypted)", u.pattern)
		}
		return fmt.Sprintf("track %s: the visitor cookie, signed (not encrypted)", u.pattern)
	case "encrypt":
		return fmt.Sprintf("encrypt %s: signed and encrypted (the client cannot read the value)", u.pattern)
	case "sign":
		return fmt.Sprintf("sign %s: signed, not encrypted (the client can read the value)", u.pattern)
	case "itsdangerous":
		return fmt.Sprintf("sign %s { format itsdangerous }: signed, not encrypted", u.pattern)
	default:
		return fmt.Sprintf("flask_session %s: Flask's session, signed by the app, not encrypted", u.pattern)
	}
}

// cliKeySource says where a handler's keys come from, to name the key that verified a value.
type cliKeySource struct {
	configured int           // configured secrets; 0 with the storage key ring
	formatKeys int           // the format's own secret_key list (itsdangerous, Flask)
	stored     *keyring.File // the storage key ring
	storage    string
}

func (k cliKeySource) describe(i int, now time.Time) string {
	switch {
	case k.formatKeys > 0:
		if i == 0 {
			return fmt.Sprintf("secret_key 1 of %d (the one that signs)", k.formatKeys)
		}
		return fmt.Sprintf("secret_key %d of %d (verifies only)", i+1, k.formatKeys)
	case k.stored == nil:
		if i == 0 {
			return fmt.Sprintf("secret 1 of %d configured (the one that signs)", k.configured)
		}
		return fmt.Sprintf("secret %d of %d configured (verifies only: secret 1 signs)", i+1, k.configured)
	}
	f := k.stored
	s := f.Secrets[i]
	text := fmt.Sprintf("secret %d of %d in the storage key ring in %s: created %s, active from %s",
		i+1, len(f.Secrets), k.storage, cliStamp(s.Created), cliStamp(keyring.ActiveFrom(s)))
	if !s.Retired.IsZero() {
		text += ", retired at " + cliStamp(s.Retired)
	}
	return text + "; " + cliSecretState(f, i, now)
}

// cliKeys is what verifies a value for one handler.
type cliKeys struct {
	codec  *cookie.Codec
	anyAge *cookie.Codec // the same keys without max_age, to tell an expired value's age and key
	keys   cliKeySource
	maxAge time.Duration
	textID bool // the visitor ID is UUID text (itsdangerous)
	// backdated: an upstream cookie's timestamp, which the handler dates back when the
	// upstream's own lifetime is shorter than max_age
	backdated bool
	realm     string // the realm the keys are derived for
	derived   bool   // keys derived from secrets and the realm (securecookie's format)
	missing   string // why there are no keys
}

func cliInspect(cmd *cobra.Command, args []string) (int, error) {
	fl := cmd.Flags()
	name, _ := fl.GetString("name")
	configFile, _ := fl.GetString("config")
	adapter, _ := fl.GetString("adapter")
	show, _ := fl.GetBool(cliValueFlag)
	if name == "" {
		return cliExitError, errors.New("--name is required: the cookie's name, as the client holds it")
	}
	if err := checkToken(name); err != nil {
		return cliExitError, fmt.Errorf("--name: %v", err)
	}
	if len(args) != 1 {
		return cliExitError, fmt.Errorf("want one cookie value (or - to read it from stdin), got %d arguments", len(args))
	}
	value := args[0]
	if value == "-" {
		line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 1<<20)).ReadString('\n')
		if err != nil && err != io.EOF {
			return cliExitError, fmt.Errorf("reading the value from stdin: %v", err)
		}
		value = strings.TrimSpace(line)
	}
	c, err := loadCLIConfig(configFile, adapter)
	if err != nil {
		return cliExitError, err
	}
	defer c.close()
	w := cmd.OutOrStdout()
	now := time.Now()
	verified, found := false, false
	for _, ch := range c.handlers {
		u, ok := ch.h.cliUse(name)
		if !ok {
			continue
		}
		if found {
			fmt.Fprintln(w)
		}
		found = true
		ok, err := c.inspect(w, ch, u, name, value, show, now)
		if err != nil {
			return cliExitError, err
		}
		verified = verified || ok
	}
	if !found {
		fmt.Fprintf(w, "no handler in the config manages cookie %s (%d signed_cookies handlers in %s)\n", name, len(c.handlers), cmpOr(c.file, "the config"))
		return cliExitError, nil
	}
	if !verified {
		return cliExitNo, nil
	}
	return cliExitOK, nil
}

// inspect reports on value under one handler and says whether it verifies.
func (c *cliConfig) inspect(w io.Writer, ch *cliHandler, u cliCookieUse, browser, value string, show bool, now time.Time) (bool, error) {
	h := ch.h
	fmt.Fprintf(w, "cookie %s: %s\n", browser, ch)
	line := func(label, format string, a ...any) {
		fmt.Fprintf(w, "  %-11s %s\n", label+":", fmt.Sprintf(format, a...))
	}
	line("managed", "%s", u.describe(h))
	if u.refused != "" {
		line("verifies", "no: %s", u.refused)
		return false, nil
	}
	k, err := c.keysFor(ch, u)
	if err != nil {
		return false, fmt.Errorf("%s: %v", ch, err)
	}
	if k.derived {
		if k.realm == "" {
			line("realm", "none")
		} else {
			line("realm", "%q", k.realm)
		}
	}
	if k.missing != "" {
		line("verifies", "no: %s", k.missing)
		return false, nil
	}
	d, err := k.codec.Decode(browser, value)
	if err != nil {
		cliReportInvalid(line, ch, u, k, browser, value, err, now)
		return false, nil
	}
	if u.kind == "track" {
		id, ok := cliVisitorID(d.Value, k.textID)
		if !ok {
			line("verifies", "no: malformed: it is signed with the handler's keys but holds no visitor ID (%d bytes); the handler issues a new ID", len(d.Value))
			return false, nil
		}
		line("verifies", "yes")
		cliReportSigned(line, d, k, now)
		line("visitor ID", "%s", id)
		return true, nil
	}
	line("verifies", "yes")
	cliReportSigned(line, d, k, now)
	if show {
		line("value", "%s", strconv.Quote(string(d.Value)))
	} else {
		line("value", "hidden (%d bytes; --%s prints it)", len(d.Value), cliValueFlag)
	}
	return true, nil
}

func cliReportSigned(line func(string, string, ...any), d cookie.Decoded, k *cliKeys, now time.Time) {
	if d.Signed != 0 {
		signed := time.Unix(d.Signed, 0)
		text := fmt.Sprintf("%s (%s)", cliStamp(signed), cliRelative(signed, now))
		if k.backdated {
			text = fmt.Sprintf("%s (%s; dated back if the upstream set it to expire sooner than max_age, so that it expires then)", cliStamp(signed), cliRelative(signed, now))
		}
		if k.maxAge > 0 {
			text += fmt.Sprintf("; accepted until %s (max_age %s)", cliStamp(signed.Add(k.maxAge)), cliDuration(k.maxAge))
		}
		line("signed", "%s", text)
	} else {
		line("signed", "no timestamp in this format: no age limit")
	}
	line("key", "%s", k.keys.describe(d.Key, now))
}

// cliReportInvalid says why a value failed, with what can be told without its keys' secrets.
func cliReportInvalid(line func(string, string, ...any), ch *cliHandler, u cliCookieUse, k *cliKeys, browser, value string, err error, now time.Time) {
	reason := err.Error()
	var de *cookie.DecodeError
	if errors.As(err, &de) {
		reason = de.Reason
	}
	switch reason {
	case cookie.ErrBadMAC.Reason:
		why := fmt.Sprintf("its MAC matches none of the handler's %s: forged or altered, signed with other secrets or in another realm, or issued for another cookie name", cliPlural(k.codec.KeyCount(), "key"))
		if k.keys.formatKeys > 0 {
			why = fmt.Sprintf("its signature matches none of the handler's %s: forged or altered, or signed with another secret_key or salt", cliPlural(k.codec.KeyCount(), "secret_key"))
		}
		if k.keys.stored != nil {
			why += fmt.Sprintf(" (or with a secret gone from the ring: retired secrets are kept %s)", cliDuration(k.keys.stored.Keep))
		}
		line("verifies", "no: bad_mac: %s", why)
	case cookie.ErrExpired.Reason:
		line("verifies", "no: expired: signed longer ago than max_age %s", cliDuration(k.maxAge))
		if k.anyAge != nil {
			if d, err := k.anyAge.Decode(browser, value); err == nil {
				signed := time.Unix(d.Signed, 0)
				line("signed", "%s (%s); expired at %s", cliStamp(signed), cliRelative(signed, now), cliStamp(signed.Add(k.maxAge)))
				line("key", "%s", k.keys.describe(d.Key, now))
			}
		}
	case cookie.ErrTooLong.Reason:
		line("verifies", "no: too_long: %d bytes, more than the %d the handler accepts", len(value), k.codec.MaxLength())
	case cookie.ErrMalformed.Reason:
		if k.codec.IsEncoded(value) {
			line("verifies", "no: malformed: it has the encoded form but does not decode as this handler encodes it")
		} else {
			line("verifies", "no: malformed: not in the encoded form: a plain value, or one altered or cut short")
			cliReportPlain(line, ch.h, u, now)
		}
	default:
		line("verifies", "no: %s", reason)
	}
}

// cliReportPlain says what the handler does with a plain value of a managed cookie while it is
// being rolled out or removed.
func cliReportPlain(line func(string, string, ...any), h *Handler, u cliCookieUse, now time.Time) {
	if u.kind == "track" || u.kind == "flask_session" {
		return
	}
	if h.Unwrap {
		line("note", "the handler unwraps: it passes plain values to the upstream as they are")
		return
	}
	for _, a := range h.Adopt {
		for _, p := range a.Cookies {
			if ok, _ := path.Match(p, u.app); ok {
				until, _ := parseDeadline(a.Until) // checked
				if until.After(now) {
					line("note", "adopt %s: plain values pass as they are until %s", p, cliStamp(until))
				} else {
					line("note", "adopt %s ended at %s: plain values no longer pass", p, cliStamp(until))
				}
				return
			}
		}
	}
}

// cliVisitorID renders a verified visitor cookie's ID as a UUID.
func cliVisitorID(v []byte, text bool) (string, bool) {
	if text {
		id, ok := cookie.ParseUUID(string(v))
		return cookie.UUIDString(id[:]), ok
	}
	if len(v) != cookie.VisitorIDLen {
		return "", false
	}
	return cookie.UUIDString(v), true
}

// keysFor builds the codec that handler uses for the cookie, with the handler's keys as
// Provision makes them, reading the storage key ring without changing it.
func (c *cliConfig) keysFor(ch *cliHandler, u cliCookieUse) (*cliKeys, error) {
	h := ch.h
	k := &cliKeys{}
	switch u.kind {
	case "itsdangerous":
		r, err := u.format.engineRule()
		if err != nil {
			return nil, fmt.Errorf("sign %s: %v", strings.Join(u.format.Names, " "), err)
		}
		k.codec, k.keys.formatKeys = r.Codec, len(u.format.SecretKey)
		return k, nil
	case "flask_session":
		f := h.FlaskSession
		keys, _, err := resolveKeys("secret_key", f.SecretKey, "flask "+f.Salt)
		if err == nil {
			k.codec, err = cookie.NewFlaskSessionCodec(keys, f.Salt, cookie.Options{MaxAge: time.Duration(f.MaxAge)})
		}
		if err == nil {
			k.anyAge, err = cookie.NewFlaskSessionCodec(keys, f.Salt, cookie.Options{})
		}
		if err != nil {
			return nil, fmt.Errorf("flask_session: %v", err)
		}
		k.maxAge, k.keys.formatKeys = time.Duration(f.MaxAge), len(keys)
		return k, nil
	case "track":
		if t := h.Track; t.Format == "itsdangerous" {
			var err error
			if k.codec, k.keys.formatKeys, err = t.itsDangerousCodec(); err != nil {
				return nil, err
			}
			k.maxAge, k.textID = time.Duration(t.MaxAge), true
			return k, nil
		}
	}
	realm, err := resolveRealm(h.Realm)
	if err != nil {
		return nil, fmt.Errorf("realm: %v", err)
	}
	k.realm, k.derived = realm, true
	var ring *cookie.KeyRing
	if len(h.Secrets) > 0 {
		if ring, _, err = h.configuredKeys(realm); err != nil {
			return nil, err
		}
		k.keys.configured = len(h.Secrets)
	} else {
		s := c.storages[ch.storageKey]
		stor, err := c.storage(s)
		if err != nil {
			return nil, err
		}
		k.keys.storage = keyring.StorageName(stor)
		f, err := keyring.Read(c.ctx, stor)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			k.missing = fmt.Sprintf("no key ring in %s yet (Caddy stores one when a config using it first runs): nothing can verify", k.keys.storage)
			k.codec = cookie.NewCodec(nil, cookie.Options{})
			return k, nil
		case err != nil:
			return nil, err
		}
		// in stored order, so that a key's index names its stored secret
		secrets := make([][]byte, len(f.Secrets))
		for i, s := range f.Secrets {
			secrets[i], _ = cookie.ParseSecret(s.Secret) // checked by keyring.Read
		}
		if ring, err = cookie.NewRealmKeyRing(realm, secrets...); err != nil {
			return nil, err
		}
		k.keys.stored = f
	}
	opts := cookie.Options{}
	switch u.kind {
	case "track":
		opts.Encrypt, opts.MaxAge = h.Track.Encrypt, time.Duration(h.Track.MaxAge)
	default:
		opts.Encrypt, opts.MaxAge = u.kind == "encrypt", time.Duration(h.MaxAge)
		k.backdated = true
		if u.split {
			opts.MaxLength = splitMaxLength
		}
	}
	k.maxAge = opts.MaxAge
	k.codec = cookie.NewCodec(ring, opts)
	opts.MaxAge = 0
	k.anyAge = cookie.NewCodec(ring, opts)
	return k, nil
}
