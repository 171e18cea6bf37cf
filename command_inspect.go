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
	"slices"
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

// cliPolicy is a handler's policy compiled with its keys, as Provision makes them (the storage
// key ring read, never changed), and what names those keys.
type cliPolicy struct {
	policy  *engine.Policy
	keys    cliKeySource
	realm   string
	missing string // why there are no keys: the storage key ring does not exist yet
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
	if len(args) < 1 || len(args) > engine.MaxSplitCookies {
		return cliExitError, fmt.Errorf("want one cookie value (or - to read it from stdin), and for a split value its further cookies' values in order, got %d arguments", len(args))
	}
	values := slices.Clone(args)
	if values[0] == "-" {
		line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 1<<20)).ReadString('\n')
		if err != nil && err != io.EOF {
			return cliExitError, fmt.Errorf("reading the value from stdin: %v", err)
		}
		values[0] = strings.TrimSpace(line)
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
		cp, err := c.compile(ch)
		if err != nil {
			return cliExitError, fmt.Errorf("%s: %v", ch, err)
		}
		if cp.policy.Inspect(name, nil, now.Unix()).Kind == "" {
			continue
		}
		if found {
			fmt.Fprintln(w)
		}
		found = true
		verified = cliReport(w, ch, cp, name, values, show, now) || verified
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

// compile compiles a handler with its keys, reading the storage key ring without changing it.
func (c *cliConfig) compile(ch *cliHandler) (*cliPolicy, error) {
	h := ch.h
	realm, err := resolveRealm(h.Realm)
	if err != nil {
		return nil, fmt.Errorf("realm: %v", err)
	}
	cp := &cliPolicy{realm: realm}
	var ring *cookie.KeyRing
	if len(h.Secrets) > 0 {
		if ring, err = h.configuredKeys(realm); err != nil {
			return nil, err
		}
		cp.keys.configured = len(h.Secrets)
	} else {
		s := c.storages[ch.storageKey]
		stor, err := c.storage(s)
		if err != nil {
			return nil, err
		}
		cp.keys.storage = keyring.StorageName(stor)
		f, err := keyring.Read(c.ctx, stor)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			cp.missing = fmt.Sprintf("no key ring in %s yet (Caddy stores one when a config using it first runs): nothing can verify", cp.keys.storage)
			ring = standInRing
		case err != nil:
			return nil, err
		default:
			// in stored order, so that a key's index names its stored secret
			secrets := make([][]byte, len(f.Secrets))
			for i, s := range f.Secrets {
				secrets[i], _ = cookie.ParseSecret(s.Secret) // checked by keyring.Read
			}
			if ring, err = cookie.NewRealmKeyRing(realm, secrets...); err != nil {
				return nil, err
			}
			cp.keys.stored = f
		}
	}
	out, err := h.compile(compileKeys{ring: ring})
	if err != nil {
		return nil, err
	}
	cp.policy = out.policy
	return cp, nil
}

// cliReport reports on a value under one handler and says whether it verifies.
func cliReport(w io.Writer, ch *cliHandler, cp *cliPolicy, browser string, values []string, show bool, now time.Time) bool {
	h := ch.h
	line := func(label, format string, a ...any) {
		fmt.Fprintf(w, "  %-11s %s\n", label+":", fmt.Sprintf(format, a...))
	}
	fmt.Fprintf(w, "cookie %s: %s\n", browser, ch)
	in := cp.policy.Inspect(browser, nil, now.Unix())
	line("managed", "%s", cliDescribe(h, in))
	if in.Refused != "" {
		line("verifies", "no: %s", in.Refused)
		return false
	}
	if in.Kind == "plain" {
		line("verifies", "no: the handler does not sign it; only its prefix guards it")
		return false
	}
	keys := cp.keys
	formatted := in.Kind == "itsdangerous" || in.Kind == "flask_session" || in.Kind == "track" && h.Track.Format != ""
	if formatted {
		keys = cliKeySource{formatKeys: in.Codec.KeyCount()}
	} else {
		if cp.realm == "" {
			line("realm", "none")
		} else {
			line("realm", "%q", cp.realm)
		}
		if cp.missing != "" {
			line("verifies", "no: %s", cp.missing)
			return false
		}
	}
	if in.Chunks > 0 && len(values) == 1 {
		if k, _, ok := cliSplitHead(values[0]); ok {
			line("split", "the value is the first of %d cookies (%s__1 … ): give their values after it", k, browser)
		}
	}
	in = cp.policy.Inspect(browser, values, now.Unix())
	maxAge := cliMaxAge(h, in.Kind)
	switch {
	case in.Adopted:
		line("verifies", "no, but it passes: a plain value, accepted as it is by %s", in.AdoptedBy)
		cliReportPlain(line, h, in, now)
		return true
	case in.Reason != 0:
		cliReportInvalid(line, h, in, keys, maxAge, values[0], now)
		return false
	}
	line("verifies", "yes")
	cliReportSigned(line, in, keys, maxAge, now)
	if in.VisitorID != "" {
		line("visitor ID", "%s", in.VisitorID)
		return true
	}
	if show {
		line("value", "%s", strconv.Quote(string(in.Decoded.Value)))
	} else {
		line("value", "hidden (%d bytes; --%s prints it)", len(in.Decoded.Value), cliValueFlag)
	}
	return true
}

// cliSplitHead reports whether a value is the first of a split value's cookies, and of how many.
func cliSplitHead(v string) (int, string, bool) {
	if len(v) < 2 || v[1] != '*' || v[0] < '2' || v[0] > '0'+engine.MaxSplitCookies {
		return 0, "", false
	}
	return int(v[0] - '0'), v[2:], true
}

// cliMaxAge is the oldest signature the handler accepts for a cookie of the kind.
func cliMaxAge(h *Handler, kind string) time.Duration {
	switch kind {
	case "track":
		return time.Duration(h.Track.MaxAge)
	case "flask_session":
		return time.Duration(h.FlaskSession.MaxAge)
	case "itsdangerous":
		return 0
	}
	return time.Duration(h.MaxAge)
}

func cliDescribe(h *Handler, in engine.Inspection) string {
	switch in.Kind {
	case "track":
		if h.Track.Encrypt {
			return fmt.Sprintf("track %s: the visitor cookie, signed and encrypted", in.Pattern)
		}
		if h.Track.Format == "itsdangerous" {
			return fmt.Sprintf("track %s: the visitor cookie, signed in itsdangerous' format (not encrypted)", in.Pattern)
		}
		return fmt.Sprintf("track %s: the visitor cookie, signed (not encrypted)", in.Pattern)
	case "encrypt":
		return fmt.Sprintf("encrypt %s: signed and encrypted (the client cannot read the value)", in.Pattern)
	case "sign":
		return fmt.Sprintf("sign %s: signed, not encrypted (the client can read the value)", in.Pattern)
	case "itsdangerous":
		return fmt.Sprintf("sign %s { format itsdangerous }: signed, not encrypted", in.Pattern)
	case "plain":
		return fmt.Sprintf("cookie %s: not signed; held with a prefix", in.Pattern)
	}
	return fmt.Sprintf("flask_session %s: Flask's session, signed by the app, not encrypted", in.Pattern)
}

func cliReportSigned(line func(string, string, ...any), in engine.Inspection, k cliKeySource, maxAge time.Duration, now time.Time) {
	d := in.Decoded
	if d.Signed != 0 {
		signed := time.Unix(d.Signed, 0)
		text := fmt.Sprintf("%s (%s)", cliStamp(signed), cliRelative(signed, now))
		if in.Kind == "sign" || in.Kind == "encrypt" {
			text = fmt.Sprintf("%s (%s; dated back if the upstream set it to expire sooner than max_age, so that it expires then)", cliStamp(signed), cliRelative(signed, now))
		}
		if maxAge > 0 {
			text += fmt.Sprintf("; accepted until %s (max_age %s)", cliStamp(signed.Add(maxAge)), cliDuration(maxAge))
		}
		line("signed", "%s", text)
	} else {
		line("signed", "no timestamp in this format: no age limit")
	}
	line("key", "%s", k.describe(d.Key, now))
}

// cliReportInvalid says why a value failed, with what can be told without its keys' secrets.
func cliReportInvalid(line func(string, string, ...any), h *Handler, in engine.Inspection, k cliKeySource, maxAge time.Duration, value string, now time.Time) {
	switch in.Reason {
	case engine.BadMAC:
		why := fmt.Sprintf("its MAC matches none of the handler's %s: forged or altered, signed with other secrets or in another realm, or issued for another cookie name", cliPlural(in.Codec.KeyCount(), "key"))
		if k.formatKeys > 0 {
			why = fmt.Sprintf("its signature matches none of the handler's %s: forged or altered, or signed with another secret_key or salt", cliPlural(in.Codec.KeyCount(), "secret_key"))
		}
		if k.stored != nil {
			why += fmt.Sprintf(" (or with a secret gone from the ring: retired secrets are kept %s)", cliDuration(k.stored.Keep))
		}
		line("verifies", "no: bad_mac: %s", why)
	case engine.Expired:
		line("verifies", "no: expired: signed longer ago than max_age %s", cliDuration(maxAge))
		if in.Decoded.Signed != 0 {
			signed := time.Unix(in.Decoded.Signed, 0)
			line("signed", "%s (%s); expired at %s", cliStamp(signed), cliRelative(signed, now), cliStamp(signed.Add(maxAge)))
			line("key", "%s", k.describe(in.Decoded.Key, now))
		}
	case engine.TooLong:
		line("verifies", "no: too_long: %d bytes, more than the %d the handler accepts", len(value), in.Codec.MaxLength())
	case engine.Malformed:
		switch {
		case in.Kind == "track" && in.Codec.IsEncoded(value):
			line("verifies", "no: malformed: it is signed with the handler's keys but holds no visitor ID; the handler issues a new ID")
		case in.Codec.IsEncoded(value):
			line("verifies", "no: malformed: it has the encoded form but does not decode as this handler encodes it")
		default:
			line("verifies", "no: malformed: not in the encoded form: a plain value, or one altered or cut short")
			cliReportPlain(line, h, in, now)
		}
	case engine.Partial:
		line("verifies", "no: partial: a split value's first cookie without all the further ones (give their values after it, in order)")
	default:
		line("verifies", "no: %s", in.Reason)
	}
}

// cliReportPlain says what the handler does with a plain value of a managed cookie while it is
// being rolled out or removed.
func cliReportPlain(line func(string, string, ...any), h *Handler, in engine.Inspection, now time.Time) {
	if in.Kind == "track" || in.Kind == "flask_session" {
		return
	}
	if h.Unwrap {
		line("note", "the handler unwraps: it passes plain values to the upstream as they are")
		return
	}
	for _, a := range h.Adopt {
		for _, p := range a.Cookies {
			if ok, _ := path.Match(p, in.App); ok {
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
