// The `caddy signed-cookies` command, registered with Caddy's CLI so that every Caddy built
// with this module has it: make a secret, check a cookie value against a config's keys, list
// and rotate the storage key ring. It reads the config as `caddy run` finds it and decodes the
// signed_cookies handlers of its http app without starting Caddy. Nothing it prints holds a
// secret or a key derived from one; decoded values only on request.

package signedcookies

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/certmagic"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/signedcookies/caddy-signedcookies/cookie"
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
			"keyring [--config <path>] [--adapter <name>] [--rotate] | " +
			"revoke [--config <path>] [--adapter <name>] (--visitor <id> | --cookie <name>=<value> | --flask <field>=<value> | --all) [--before <time>] | " +
			"revocations [--config <path>] [--adapter <name>]",
		Short: "Makes secrets, checks cookie values, manages the key ring and revokes cookies of signed_cookies",
		Long: `
Tools for the signed_cookies handler. The config is found as 'caddy run' finds it:
--config names the file (the Caddyfile in the current directory by default), and the
caddyfile adapter applies to files named Caddyfile or with --adapter caddyfile. Caddy is
not started. Nothing printed holds a secret or a key derived from one.

  secret    Prints a new random secret for 'secret' in the Caddyfile.
  inspect   Says whether a cookie value verifies under the config's keys, and why not.
  keyring   Lists the storage key ring; --rotate rotates it now.
  revoke    Revokes cookies before they expire: a visitor, a cookie value, a
            Flask user, or everything (the emergency brake).
  revocations  Lists the stored revocations.

Run 'caddy signed-cookies <subcommand> --help' for the details of each.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
				return cliExit(c, cliExitError, fmt.Errorf("%v (see %s --help)", err, c.CommandPath()))
			})
			cmd.RunE = func(c *cobra.Command, args []string) error {
				if len(args) > 0 {
					return cliExit(c, cliExitError, fmt.Errorf("unknown subcommand %q: want secret, inspect, keyring, revoke or revocations", args[0]))
				}
				_ = c.Usage()
				return cliExit(c, cliExitError, nil)
			}
			cmd.AddCommand(cliSecretCommand(), cliInspectCommand(), cliKeyringCommand(), cliRevokeCommand(), cliRevocationsCommand())
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
