// The keyring subcommand: the storage key ring listed (dates and states, never a secret)
// and rotated now under the storage lock.

package signedcookies

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/spf13/cobra"

	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
)

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
		fmt.Fprintf(w, "storage key ring: %s in %s\n", keyring.StorageKey, keyring.StorageName(stor))
		f, err := keyring.Read(c.ctx, stor)
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
				return cliExitError, fmt.Errorf("rotating the key ring in %s: %v", keyring.StorageName(stor), err)
			}
			if rotated {
				n := after.Secrets[0]
				fmt.Fprintf(w, "  rotated: a new secret 1 signs from %s (%s), once every instance sharing the ring has re-read it; the current one signs until then and every secret is kept\n",
					cliStamp(keyring.ActiveFrom(n)), cliRelative(keyring.ActiveFrom(n), now))
			} else {
				n := after.Secrets[0]
				fmt.Fprintf(w, "  not rotated: secret 1, created %s, still waits to sign until %s; a rotation waits for it, or no instance would ever sign with it\n",
					cliStamp(n.Created), cliStamp(keyring.ActiveFrom(n)))
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
	p := fsys.Filename(keyring.StorageKey)
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

// cliRotateRing rotates the ring in storage now, under the storage lock, as a running instance
// does when a rotation is due (keyring.RotateNow), with the settings of the config's handlers
// that use the ring. It reports the ring as stored after, and whether this update added a new
// secret.
func cliRotateRing(ctx context.Context, s *cliStorage, stor certmagic.Storage) (*keyring.File, bool, error) {
	var uses []keyring.Use
	for _, ch := range s.users {
		uses = append(uses, *newRingUse("", ch.h, "").Use)
	}
	return keyring.RotateNow(ctx, stor, caddy.Log().Named("signed_cookies.keyring"), uses...)
}

// cliListRing prints a stored ring: its settings and each secret's dates and state, never the
// secrets.
func cliListRing(w io.Writer, s *cliStorage, f *keyring.File, now time.Time) {
	var rotate time.Duration
	for _, ch := range s.users {
		fmt.Fprintf(w, "  used by:        %s (rotate %s, check_interval %s)\n", ch, cliDuration(time.Duration(ch.h.Rotate)), cliDuration(time.Duration(ch.h.CheckInterval)))
		if r := time.Duration(ch.h.Rotate); rotate == 0 || r < rotate {
			rotate = r
		}
	}
	fmt.Fprintf(w, "  keep:           %s: a retired secret still verifies this long (the longest cookie lifetime of the instances sharing the ring)\n", cliDuration(f.Keep))
	fmt.Fprintf(w, "  check_interval: %s: the slowest re-read of the instances sharing the ring; a new secret waits two of them before it signs\n", cliDuration(f.CheckInterval))
	if rotate > 0 {
		due := keyring.NextRotation(f, rotate)
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
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", i+1, cliStamp(sec.Created), cliStamp(keyring.ActiveFrom(sec)), retired, cliSecretState(f, i, now))
	}
	_ = tw.Flush()
}

// cliSecretState says what a stored secret does now (keyring.StateOf).
func cliSecretState(f *keyring.File, i int, now time.Time) string {
	st := keyring.StateOf(f, i, now)
	switch {
	case st.Kind == keyring.Waits:
		return fmt.Sprintf("waits: signs %s, verifies now", cliRelative(st.At, now))
	case st.Kind == keyring.SignsOldest:
		return "signs now: no secret is active yet, and it is the oldest"
	case st.Kind == keyring.Signs && !st.At.IsZero():
		return fmt.Sprintf("signs now, until %s", cliStamp(st.At))
	case st.Kind == keyring.Signs:
		return "signs now"
	case st.At.IsZero():
		return "verifies only"
	default:
		return fmt.Sprintf("verifies only, until %s (retired + keep)", cliStamp(st.At))
	}
}
