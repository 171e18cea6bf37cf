// The revoke and revocations subcommands: a revocation stored for a config's handlers, under
// the storage lock, and the stored revocations listed (kinds, names, times; never a value).

package signedcookies

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/spf13/cobra"

	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
	"github.com/signedcookies/caddy-signedcookies/internal/revoke"
)

func cliRevokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke [--config <path>] [--adapter <name>] (--visitor <id> | --cookie <name>=<value> | --flask <field>=<value> | --all) [--before <time>]",
		Short: "Revokes signed cookies before they expire: a visitor, a cookie value, a Flask user, or everything",
		Long: `
Stores a revocation for the config's signed_cookies handlers, beside their key ring (with
configured secrets, in the config's storage), under the storage lock: the cookies it names
that were signed at or before --before (default: now) stop verifying, on every instance
sharing the storage. They are then dropped and cleared as any invalid cookie (or the
request is rejected, with on_invalid reject); a revoked visitor gets a new ID.

  --visitor <id>          a visitor ID (the UUID the upstream reads in X-Visitor-Id, or 32
                          hex digits with id_format nginx)
  --cookie <name>=<value> every signed copy of a cookie managed by sign or encrypt whose plain
                          value is <value> (session=alice), on every device
  --flask <field>=<value> every Flask session whose field, exposed by flask_session, holds
                          <value> (user_id=42), by the session's own signing time
  --all                   everything of the handlers' realms (the emergency brake: the keys
                          stay)

--before takes a date (its first second, UTC) or an RFC 3339 time, at most a day ahead.
An entry lasts as long as the cookies it revokes could verify (their max_age), then goes.
Values are never stored: entries hold a hash of the subject.

Running instances apply it at their next re-read of storage: within their check_interval
(1 minute by default). The admin API's POST /signed_cookies/revoke applies it at once on the
instance that takes it.

Exit status: 0 when stored, 1 when every cookie it concerns has expired already (nothing
stored), 2 for usage and config errors, a cookie no handler can revoke, a full store and a
store that cannot be read or written.
`,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := cliRevoke(cmd, args)
			return cliExit(cmd, code, err)
		},
	}
	fl := cmd.Flags()
	fl.StringP("config", "c", "", "Configuration file (default: the Caddyfile in the current directory)")
	fl.StringP("adapter", "a", "", "Name of config adapter to apply")
	fl.String("visitor", "", "Revoke a visitor ID")
	fl.String("cookie", "", "Revoke a managed cookie's value: <name>=<value>")
	fl.String("flask", "", "Revoke the Flask sessions whose exposed field holds a value: <field>=<value>")
	fl.Bool("all", false, "Revoke everything of the handlers' realms")
	fl.String("before", "", "Revoke what was signed at or before this time (default: now)")
	return cmd
}

func cliRevocationsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revocations [--config <path>] [--adapter <name>]",
		Short: "Lists the stored revocations",
		Long: `
Lists the revocations stored for the config's signed_cookies handlers, storage by storage and
realm by realm: kind, name (cookie or Flask field), the subject's hash, the time before which
cookies are revoked and when the entry goes. Values and visitor IDs are never stored, so
never shown. It only reads storage.

Exit status: 0 on success, 1 when no revocation is stored, 2 for usage and config errors
and a store that cannot be read.
`,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := cliRevocations(cmd, args)
			return cliExit(cmd, code, err)
		},
	}
	cmd.Flags().StringP("config", "c", "", "Configuration file (default: the Caddyfile in the current directory)")
	cmd.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	return cmd
}

// cliRevokeConfig loads the config the command names and returns its handlers as
// revocation targets, each with the store of its storage (the CLI's own, not running). The
// caller closes the config.
func cliRevokeConfig(cmd *cobra.Command) (*cliConfig, []revokeTarget, error) {
	configFile, _ := cmd.Flags().GetString("config")
	adapter, _ := cmd.Flags().GetString("adapter")
	c, err := loadCLIConfig(configFile, adapter)
	if err != nil {
		return nil, nil, err
	}
	if len(c.handlers) == 0 {
		c.close()
		return nil, nil, fmt.Errorf("no signed_cookies handler in %s", cmpOr(c.file, "the config"))
	}
	targets, err := cliRevokeTargets(c)
	if err != nil {
		c.close()
		return nil, nil, err
	}
	return c, targets, nil
}

// cliRevokeTargets are the config's handlers as revocation targets.
func cliRevokeTargets(c *cliConfig) ([]revokeTarget, error) {
	stores := map[string]*revoke.Store{}
	var targets []revokeTarget
	for _, ch := range c.handlers {
		realm, err := resolveRealm(ch.h.Realm)
		if err != nil {
			return nil, fmt.Errorf("%s: realm: %v", ch, err)
		}
		key, every := revocationStorageKey(ch.h), time.Duration(ch.h.CheckInterval)
		if len(ch.h.Secrets) > 0 {
			every = defaultCheck
		}
		cs := c.storages[key]
		if cs == nil {
			cs = &cliStorage{raw: c.storageRaw}
			c.storages[key] = cs
		}
		s := stores[key]
		if s == nil {
			stor, err := c.storage(cs)
			if err != nil {
				return nil, err
			}
			s = revoke.New(stor, revoke.Options{Logger: caddy.Log().Named("signed_cookies.revocations")})
			stores[key] = s
		}
		targets = append(targets, revokeTarget{store: s, spec: ch.h.revocable(realm), every: every})
	}
	return targets, nil
}

func cliRevoke(cmd *cobra.Command, args []string) (int, error) {
	fl := cmd.Flags()
	if len(args) > 0 {
		return cliExitError, fmt.Errorf("revoke takes no arguments, got %q", args[0])
	}
	var rq revokeRequest
	rq.Visitor, _ = fl.GetString("visitor")
	rq.All, _ = fl.GetBool("all")
	rq.Before, _ = fl.GetString("before")
	for _, f := range []struct {
		flag string
		dst  *string
	}{{"cookie", &rq.Cookie}, {"flask", &rq.Flask}} {
		arg, _ := fl.GetString(f.flag)
		if arg == "" {
			continue
		}
		name, value, ok := strings.Cut(arg, "=")
		if !ok || name == "" {
			return cliExitError, fmt.Errorf("--%s: want <name>=<value>, got %q", f.flag, arg)
		}
		*f.dst = name
		rq.Value, _ = json.Marshal(value)
	}
	c, targets, err := cliRevokeConfig(cmd)
	if err != nil {
		return cliExitError, err
	}
	defer c.close()
	plan, report, err := planRevocation(&rq, targets, time.Now())
	switch {
	case errors.Is(err, errNothingToRevoke):
		fmt.Fprintf(cmd.OutOrStdout(), "not revoked: %v\n", err)
		return cliExitNo, nil
	case err != nil:
		return cliExitError, err
	}
	for s := range plan {
		if err := cliCheckRevocationsOwner(s.Storage()); err != nil {
			return cliExitError, err
		}
	}
	if err := storeRevocations(c.ctx, plan); err != nil {
		return cliExitError, err
	}
	var within time.Duration
	for _, t := range targets {
		if plan[t.store] != nil {
			within = max(within, t.every)
		}
	}
	cliPrintRevoked(cmd.OutOrStdout(), report, within)
	return cliExitOK, nil
}

// cliPrintRevoked says what a revocation stored.
func cliPrintRevoked(w io.Writer, report []revokedEntry, within time.Duration) {
	e := report[0]
	what := map[string]string{
		"visitor": "visitor cookies of the ID",
		"cookie":  fmt.Sprintf("cookie %s with the value", e.Name),
		"flask":   fmt.Sprintf("Flask sessions whose %s holds the value", e.Name),
		"all":     "every cookie of the realm",
	}[e.Kind]
	fmt.Fprintf(w, "revoked: %s, signed at or before %s\n", what, cliStamp(e.Before))
	for _, e := range report {
		fmt.Fprintf(w, "  realm %q in %s: stored in %s, in force until %s\n", e.Realm, e.Storage, revoke.StorageKey, cliStamp(e.Until))
	}
	fmt.Fprintf(w, "running instances sharing the storage apply it at their next re-read, within %s (check_interval)\n", cliDuration(within))
}

// cliCheckRevocationsOwner refuses to write revocations to file system storage as another
// user than the one that owns it (the revocations file, else the key ring, else the
// storage's signed_cookies folder): the file written would be unreadable to the Caddy that
// must apply it, which would keep serving its last good copy, without the revocation.
func cliCheckRevocationsOwner(stor certmagic.Storage) error {
	fsys, ok := stor.(*certmagic.FileStorage)
	if !ok {
		return nil
	}
	for _, p := range []string{fsys.Filename(revoke.StorageKey), fsys.Filename(keyring.StorageKey), filepath.Dir(fsys.Filename(revoke.StorageKey))} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if owner, ok := fileOwner(fi); ok && owner != os.Geteuid() {
			return fmt.Errorf("%s belongs to user %d and this command runs as user %d: the revocations it wrote would be unreadable to the Caddy "+
				"that must apply them; run the command as user %d (or use the admin API's POST /signed_cookies/revoke)", p, owner, os.Geteuid(), owner)
		}
		return nil
	}
	return nil
}

func cliRevocations(cmd *cobra.Command, args []string) (int, error) {
	if len(args) > 0 {
		return cliExitError, fmt.Errorf("revocations takes no arguments, got %q", args[0])
	}
	c, targets, err := cliRevokeConfig(cmd)
	if err != nil {
		return cliExitError, err
	}
	defer c.close()
	w := cmd.OutOrStdout()
	code := cliExitNo
	var seen []*revoke.Store
	now := time.Now()
	for _, t := range targets {
		if slices.Contains(seen, t.store) {
			continue
		}
		if len(seen) > 0 {
			fmt.Fprintln(w)
		}
		seen = append(seen, t.store)
		stor := t.store.Storage()
		fmt.Fprintf(w, "revocations: %s in %s\n", revoke.StorageKey, keyring.StorageName(stor))
		f, err := revoke.Read(c.ctx, stor, now)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintln(w, "  none stored")
			continue
		case err != nil:
			return cliExitError, err
		}
		entries := listEntries(keyring.StorageName(stor), f)
		live := slices.DeleteFunc(entries, func(e revokedEntry) bool { return e.Until.Before(now) })
		if len(live) == 0 {
			fmt.Fprintln(w, "  none in force")
			continue
		}
		code = cliExitOK
		cliListRevocations(w, live)
	}
	return code, nil
}

// cliListRevocations prints entries, realm by realm.
func cliListRevocations(w io.Writer, entries []revokedEntry) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	realm := "\x00"
	for _, e := range entries {
		if e.Realm != realm {
			realm = e.Realm
			fmt.Fprintf(tw, "  realm %q\n", realm)
			fmt.Fprintln(tw, "    kind\tname\tsubject\tsigned at or before\tin force until")
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\n", e.Kind, cmpOr(e.Name, "-"), cmpOr(e.Subject, "-"), cliStamp(e.Before), cliStamp(e.Until))
	}
	_ = tw.Flush()
}
