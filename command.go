// The `caddy signed-cookies` command, registered with Caddy's CLI so that every Caddy built
// with this module has it: make a secret, check a cookie value against a config's keys, list
// and rotate the storage key ring. It reads the config as `caddy run` finds it and decodes the
// signed_cookies handlers of its http app without starting Caddy. Nothing it prints holds a
// secret or a key derived from one; decoded values only on request.

package signedcookies

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/certmagic"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/engine"
)

// Exit statuses of the subcommands.
const (
	cliExitOK = 0 // the value verifies; the listing or rotation succeeded
	cliExitNo = 1 // the value does not verify; no key ring yet; the rotation did not happen
	// bad arguments, a config that does not load, a cookie no handler manages, a key ring that
	// cannot be read or written
	cliExitError = 2
)

// cliValueFlag is the inspect flag that prints a decoded value.
const cliValueFlag = "show-value"

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name: "signed-cookies",
		Usage: "secret | inspect --name <cookie> [--config <path>] [--adapter <name>] [--show-value] <value> | " +
			"keyring [--config <path>] [--adapter <name>] [--rotate]",
		Short: "Makes secrets, checks cookie values and manages the key ring of signed_cookies",
		Long: `
Tools for the signed_cookies handler. The config is found as 'caddy run' finds it:
--config names the file (the Caddyfile in the current directory by default), and the
caddyfile adapter applies to files named Caddyfile or with --adapter caddyfile. Caddy is
not started. Nothing printed holds a secret or a key derived from one.

  secret    Prints a new random secret for 'secret' in the Caddyfile.
  inspect   Says whether a cookie value verifies under the config's keys, and why not.
  keyring   Lists the storage key ring; --rotate rotates it now.

Run 'caddy signed-cookies <subcommand> --help' for the details of each.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
				return cliExit(c, cliExitError, fmt.Errorf("%v (see %s --help)", err, c.CommandPath()))
			})
			cmd.RunE = func(c *cobra.Command, args []string) error {
				if len(args) > 0 {
					return cliExit(c, cliExitError, fmt.Errorf("unknown subcommand %q: want secret, inspect or keyring", args[0]))
				}
				_ = c.Usage()
				return cliExit(c, cliExitError, nil)
			}
			cmd.AddCommand(cliSecretCommand(), cliInspectCommand(), cliKeyringCommand())
		},
	})
}

// errCLINotVerified ends a command with status 1 once its output has said why.
var errCLINotVerified = errors.New("not verified")

// cliExit ends a command with the status code: 0 and a silent 1 directly, an error and
// other codes through Caddy's wrapper, which logs the error as Caddy's commands do.
func cliExit(cmd *cobra.Command, code int, err error) error {
	if err == nil {
		switch code {
		case cliExitOK:
			return nil
		case cliExitNo:
			cmd.SilenceErrors = true
			return errCLINotVerified
		}
		cmd.SilenceErrors = true // the output or the usage said why
	}
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return code, err })(cmd, nil)
}

func cliSecretCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "secret",
		Short: "Prints a new random secret",
		Long: `
Prints a new secret: 32 bytes from the system's random source, in standard base64, on one
line and nothing else. Give it to 'secret' (best through {env.X} or {file.X}), first to sign
with it, after the current ones to accept cookies before they sign.
`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cliExit(cmd, cliExitError, errors.New("secret takes no arguments"))
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), cookie.NewSecret())
			return err
		},
	}
}

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

func cliKeyringCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keyring [--config <path>] [--adapter <name>] [--rotate]",
		Short: "Lists the storage key ring; --rotate rotates it now",
		Long: `
Lists the key ring that signed_cookies handlers without 'secret' keep in storage (the
handler's 'storage', else the config's, else Caddy's data directory): each secret by age,
when it signs from, when it retired and what it does now, newest first, and the keep and
check_interval recorded by the instances sharing it. Secrets are never printed. It only
reads storage: a ring not created yet is reported, not created.

--rotate adds a new signing secret now, under the storage lock, as a running Caddy does when
a rotation is due: the new secret signs after two of the slowest check intervals (so that
every instance sharing the ring accepts its cookies first) and every current secret is kept
until its cookies expire. It refuses while a rotated-in secret still waits to sign, and in
file system storage a ring another user owns (run it as the user Caddy runs as). Running
instances pick the new secret up on their next re-read.

With configured secrets the ring is not used: the command says so (and how many secrets
each handler has).

Exit status: 0 on success, 1 when a ring does not exist yet or was not rotated, 2 for usage
and config errors and a ring that cannot be read or written.
`,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := cliKeyring(cmd, args)
			return cliExit(cmd, code, err)
		},
	}
	cmd.Flags().StringP("config", "c", "", "Configuration file (default: the Caddyfile in the current directory)")
	cmd.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	cmd.Flags().Bool("rotate", false, "Rotate now: add a new signing secret under the storage lock")
	return cmd
}

// cliConfig is what the subcommands need of a config: its storage and its signed_cookies
// handlers, with their defaults and checked as Provision checks them.
type cliConfig struct {
	file       string
	storageRaw json.RawMessage
	handlers   []*cliHandler
	storages   map[string]*cliStorage
	ctx        caddy.Context
	cancel     context.CancelFunc
}

// cliHandler is a signed_cookies handler found in the config.
type cliHandler struct {
	h          *Handler
	where      string // its place in the JSON config
	storageKey string // which storage holds its key ring (without secrets)
}

func (ch *cliHandler) String() string { return ch.h.describe() + " at " + ch.where }

// cliStorage is a storage holding a key ring, and the handlers that use it.
type cliStorage struct {
	raw   json.RawMessage // the storage module's config; nil: Caddy's default storage
	stor  certmagic.Storage
	users []*cliHandler
}

// loadCLIConfig loads the config with Caddy's own helper (the default Caddyfile, adapters)
// and decodes the signed_cookies handlers of its http app.
func loadCLIConfig(configFile, adapter string) (*cliConfig, error) {
	js, file, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return nil, err
	}
	if len(js) == 0 {
		return nil, errors.New("no config: name one with --config, or run where a Caddyfile is")
	}
	var top struct {
		StorageRaw json.RawMessage            `json:"storage,omitempty"`
		Apps       map[string]json.RawMessage `json:"apps,omitempty"`
	}
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, fmt.Errorf("reading the config: %v", err)
	}
	c := &cliConfig{file: file, storageRaw: top.StorageRaw, storages: map[string]*cliStorage{}}
	if raw := top.Apps["http"]; raw != nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // durations in nanoseconds exceed a float64's integers
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("reading the http app: %v", err)
		}
		if err := c.collect(v, "apps.http"); err != nil {
			return nil, err
		}
	}
	c.ctx, c.cancel = caddy.NewContext(caddy.Context{Context: context.Background()})
	return c, nil
}

func (c *cliConfig) close() {
	if c.cancel != nil {
		c.cancel()
	}
}

// collect finds the signed_cookies handlers anywhere in v (routes, subroutes, error routes):
// arrays in their order, objects by sorted key, so that the listing is the same every run.
func (c *cliConfig) collect(v any, where string) error {
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == "signed_cookies" {
			return c.addHandler(v, where)
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := c.collect(v[k], where+"."+k); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := c.collect(e, fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *cliConfig) addHandler(obj map[string]any, where string) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	h := new(Handler)
	if err := json.Unmarshal(b, h); err != nil {
		return fmt.Errorf("signed_cookies at %s: %v", where, err)
	}
	h.logger, h.now = zap.NewNop(), time.Now
	h.setDefaults()
	if err := h.check(); err != nil {
		return fmt.Errorf("%s at %s: %v", h.describe(), where, err)
	}
	ch := &cliHandler{h: h, where: where}
	if len(h.Secrets) == 0 {
		// handlers with equal storage config share one ring, as in a running Caddy
		ch.storageKey = "default"
		raw := c.storageRaw
		if h.StorageRaw != nil {
			ch.storageKey, raw = "module:"+string(h.StorageRaw), h.StorageRaw
		}
		s := c.storages[ch.storageKey]
		if s == nil {
			s = &cliStorage{raw: raw}
			c.storages[ch.storageKey] = s
		}
		s.users = append(s.users, ch)
	}
	c.handlers = append(c.handlers, ch)
	return nil
}

// storage loads the storage module holding a handler's key ring, as Caddy does: the
// handler's own storage, else the config's, else the file system in Caddy's data directory.
func (c *cliConfig) storage(s *cliStorage) (certmagic.Storage, error) {
	if s.stor != nil {
		return s.stor, nil
	}
	if s.raw == nil {
		s.stor = caddy.DefaultStorage
		return s.stor, nil
	}
	stor, err := loadStorage(c.ctx, &Handler{StorageRaw: s.raw})
	if err != nil {
		return nil, fmt.Errorf("loading storage: %v", err)
	}
	s.stor = stor
	return stor, nil
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
	configured int          // configured secrets; 0 with the storage key ring
	formatKeys int          // the format's own secret_key list (itsdangerous, Flask)
	stored     *keyRingFile // the storage key ring
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
		i+1, len(f.Secrets), k.storage, cliStamp(s.Created), cliStamp(cliActiveFrom(s)))
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
		k.keys.storage = storageName(stor)
		f, err := readRing(c.ctx, stor)
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
			secrets[i], _ = cookie.ParseSecret(s.Secret) // checked by readRing
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

func cliKeyring(cmd *cobra.Command, args []string) (int, error) {
	fl := cmd.Flags()
	configFile, _ := fl.GetString("config")
	adapter, _ := fl.GetString("adapter")
	rotate, _ := fl.GetBool("rotate")
	if len(args) > 0 {
		return cliExitError, fmt.Errorf("keyring takes no arguments, got %q", args[0])
	}
	c, err := loadCLIConfig(configFile, adapter)
	if err != nil {
		return cliExitError, err
	}
	defer c.close()
	w := cmd.OutOrStdout()
	if len(c.handlers) == 0 {
		fmt.Fprintf(w, "no signed_cookies handler in %s\n", cmpOr(c.file, "the config"))
		return cliExitError, nil
	}
	var configured []*cliHandler
	var rings []*cliStorage
	for _, ch := range c.handlers {
		switch s := c.storages[ch.storageKey]; {
		case len(ch.h.Secrets) > 0:
			configured = append(configured, ch)
		case !slices.Contains(rings, s):
			rings = append(rings, s)
		}
	}
	listConfigured := func() {
		for _, ch := range configured {
			fmt.Fprintf(w, "  %s: %d configured secrets (values not shown)\n", ch, len(ch.h.Secrets))
		}
	}
	if len(rings) == 0 {
		fmt.Fprintln(w, "the storage key ring is not used: every signed_cookies handler has configured secrets")
		listConfigured()
		if rotate {
			return cliExitError, errors.New("--rotate: no handler uses the storage key ring; to rotate configured secrets, put a new one (caddy signed-cookies secret) first and keep the old ones after it until their cookies expire")
		}
		return cliExitOK, nil
	}
	code := cliExitOK
	for i, s := range rings {
		if i > 0 {
			fmt.Fprintln(w)
		}
		stor, err := c.storage(s)
		if err != nil {
			return cliExitError, err
		}
		fmt.Fprintf(w, "storage key ring: %s in %s\n", keyRingStorageKey, storageName(stor))
		f, err := readRing(c.ctx, stor)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintln(w, "  none yet: Caddy stores one when a config using it first runs (nothing was created)")
			code = cliExitNo
			continue
		case err != nil:
			return cliExitError, err
		}
		if rotate {
			if err := cliCheckOwner(stor); err != nil {
				return cliExitError, err
			}
			now := time.Now()
			after, rotated, err := cliRotateRing(c.ctx, s, stor)
			if err != nil {
				return cliExitError, fmt.Errorf("rotating the key ring in %s: %v", storageName(stor), err)
			}
			if rotated {
				n := after.Secrets[0]
				fmt.Fprintf(w, "  rotated: a new secret 1 signs from %s (%s), once every instance sharing the ring has re-read it; the current one signs until then and every secret is kept\n",
					cliStamp(cliActiveFrom(n)), cliRelative(cliActiveFrom(n), now))
			} else {
				n := after.Secrets[0]
				fmt.Fprintf(w, "  not rotated: secret 1, created %s, still waits to sign until %s; a rotation waits for it, or no instance would ever sign with it\n",
					cliStamp(n.Created), cliStamp(cliActiveFrom(n)))
				code = cliExitNo
			}
			f = after
		}
		cliListRing(w, s, f, time.Now())
	}
	if len(configured) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "handlers with configured secrets, which do not use the storage key ring:")
		listConfigured()
	}
	return code, nil
}

// cliCheckOwner refuses to rotate a ring in file system storage that another user owns: the
// rotated ring is written afresh (mode 0600) and would belong to this user, unreadable to the
// Caddy that uses it, as after a `sudo caddy signed-cookies keyring --rotate`.
func cliCheckOwner(stor certmagic.Storage) error {
	fsys, ok := stor.(*certmagic.FileStorage)
	if !ok {
		return nil
	}
	p := fsys.Filename(keyRingStorageKey)
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("--rotate: %v", err)
	}
	if owner, ok := fileOwner(fi); ok && owner != os.Geteuid() {
		return fmt.Errorf("--rotate: the key ring %s belongs to user %d and this command runs as user %d: "+
			"the rotated ring would belong to user %d, unreadable to the Caddy that uses it; run the command as user %d",
			p, owner, os.Geteuid(), os.Geteuid(), owner)
	}
	return nil
}

// cliRotateRing rotates the ring in storage now, under the storage lock: the update a running
// instance makes when a rotation is due (sharedRing.sync), with the settings of the config's
// handlers that use the ring and a rotation interval that has always passed. It reports the
// ring as stored after, and whether this update added a new secret (not while one waits to
// sign, also when another instance rotated a moment before the lock was taken).
func cliRotateRing(ctx context.Context, s *cliStorage, stor certmagic.Storage) (*keyRingFile, bool, error) {
	sr := newSharedRing("signed-cookies keyring --rotate", stor, caddy.Log().Named("signed_cookies.keyring"))
	for _, ch := range s.users {
		u := newRingUse(sr, ch.h, "")
		u.rotate = time.Nanosecond
		if err := sr.join(ctx, u); err != nil {
			return nil, false, err
		}
	}
	if _, err := sr.sync(ctx, false); err != nil {
		return nil, false, err
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	return sr.file, slices.Contains(sr.changes, "rotated"), nil
}

// cliListRing prints a stored ring: its settings and each secret's dates and state, never the
// secrets.
func cliListRing(w io.Writer, s *cliStorage, f *keyRingFile, now time.Time) {
	var rotate time.Duration
	for _, ch := range s.users {
		fmt.Fprintf(w, "  used by:        %s (rotate %s, check_interval %s)\n", ch, cliDuration(time.Duration(ch.h.Rotate)), cliDuration(time.Duration(ch.h.CheckInterval)))
		if r := time.Duration(ch.h.Rotate); rotate == 0 || r < rotate {
			rotate = r
		}
	}
	fmt.Fprintf(w, "  keep:           %s: a retired secret still verifies this long (the longest cookie lifetime of the instances sharing the ring)\n", cliDuration(f.Keep))
	fmt.Fprintf(w, "  check_interval: %s: the slowest re-read of the instances sharing the ring; a new secret waits two of them before it signs\n", cliDuration(f.CheckInterval))
	if newest := f.Secrets[0]; rotate > 0 {
		due := newest.Created.Add(rotate)
		if a := cliActiveFrom(newest); a.After(due) {
			due = a
		}
		fmt.Fprintf(w, "  next rotation:  %s (%s; rotate %s after secret 1 was created, by a running Caddy with this config)\n", cliStamp(due), cliRelative(due, now), cliDuration(rotate))
	}
	fmt.Fprintf(w, "  secrets:        %d, newest first (their values are never shown)\n\n", len(f.Secrets))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tcreated\tactive from\tretired at\tnow")
	for i, sec := range f.Secrets {
		retired := "-"
		if !sec.Retired.IsZero() {
			retired = cliStamp(sec.Retired)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", i+1, cliStamp(sec.Created), cliStamp(cliActiveFrom(sec)), retired, cliSecretState(f, i, now))
	}
	_ = tw.Flush()
}

// cliActiveFrom is when a stored secret signs from, as shown: its activation time, or its
// creation when it has none (it has signed since it was stored).
func cliActiveFrom(s storedSecret) time.Time {
	if s.Active.IsZero() {
		return s.Created
	}
	return s.Active
}

// cliSecretState says what a stored secret does now.
func cliSecretState(f *keyRingFile, i int, now time.Time) string {
	s, signer := f.Secrets[i], f.signer(now)
	switch {
	case i < signer:
		return fmt.Sprintf("waits: signs %s, verifies now", cliRelative(s.Active, now))
	case i == signer && s.Active.After(now):
		return "signs now: no secret is active yet, and it is the oldest"
	case i == signer:
		if !s.Retired.IsZero() && s.Retired.After(now) {
			return fmt.Sprintf("signs now, until %s", cliStamp(s.Retired))
		}
		return "signs now"
	case s.Retired.IsZero():
		return "verifies only"
	default:
		until := s.Retired.Add(f.Keep)
		return fmt.Sprintf("verifies only, until %s (retired + keep)", cliStamp(until))
	}
}

func cliStamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// cliRelative says how far t is from now: "3d4h ago", "in 2m2s".
func cliRelative(t, now time.Time) string {
	if d := t.Sub(now); d > 0 {
		return "in " + cliRoughDuration(d)
	}
	return cliRoughDuration(now.Sub(t)) + " ago"
}

// cliRoughDuration is d in days and hours, hours and minutes, or seconds.
func cliRoughDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= day:
		if h := (d % day) / time.Hour; h > 0 {
			return fmt.Sprintf("%dd%dh", d/day, h)
		}
		return fmt.Sprintf("%dd", d/day)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
	}
	return d.String()
}

// cliPlural is "1 key", "2 keys".
func cliPlural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// cliDuration writes a duration as the config would: whole days as "30d".
func cliDuration(d time.Duration) string {
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}
