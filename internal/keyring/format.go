// The stored ring: its format, the checks a ring passes before anything builds on it, and the
// bounded reads and writes of storage (sizes, symbolic links).

package keyring

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

const (
	// StorageKey is where the ring is stored; LockName the storage lock its writers take.
	StorageKey = "signed_cookies/keyring.json"
	LockName   = "signed_cookies_keyring"
	// Version is the stored format's version.
	Version = 1
	// MaxSecrets bounds the HMACs a forged cookie costs and the work of loading a ring;
	// MaxFileBytes is far above what that many secrets take (~150 bytes each).
	MaxSecrets   = 64
	MaxFileBytes = 64 << 10
)

// File is the stored object. Secrets are newest first; the newest active one signs.
type File struct {
	Version int      `json:"version"`
	Secrets []Secret `json:"secrets"`
	// Keep is the longest any instance sharing the ring asked to keep retired secrets (the
	// longest cookie lifetime); pruning honours it, so one site's short lifetime cannot
	// invalidate another site's cookies.
	Keep time.Duration `json:"keep,omitempty"`
	// CheckInterval is the longest re-read interval of any instance sharing the ring: a new
	// secret signs only once the slowest reader can have read it.
	CheckInterval time.Duration `json:"check_interval,omitempty"`
}

// Secret is one secret of the ring with its dates.
type Secret struct {
	Secret  string    `json:"secret"` // base64 of 32 random bytes
	Created time.Time `json:"created"`
	// Active is when it starts signing: a rotation gives every instance two re-read
	// intervals to learn the new secret (and accept its cookies) before any signs with it.
	// Zero: since Created.
	Active time.Time `json:"active,omitzero"`
	// Retired is when a newer secret took over signing; cookies signed before then stay
	// valid for Keep after it.
	Retired time.Time `json:"retired,omitzero"`
}

// StorageName names a storage in logs and errors (certmagic's storages are Stringers).
func StorageName(s certmagic.Storage) string {
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", s)
}

// moveAway ends every error about a stored ring that cannot be used: what to do about it.
const moveAway = "move it away: running instances then store the secrets they hold again, and with none running the next start makes a new ring"

// Read loads the stored ring and checks it, whole, before anything builds on it (a rotation
// would store it again): size, version, count, each secret, duplicates. A missing ring is an
// error that matches fs.ErrNotExist.
func Read(ctx context.Context, stor certmagic.Storage) (*File, error) {
	b, err := loadBounded(ctx, stor)
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s in %s is not a key ring (%v); %s", StorageKey, StorageName(stor), err, moveAway)
	}
	if err := f.Check(); err != nil {
		return nil, fmt.Errorf("%s in %s: %v; %s", StorageKey, StorageName(stor), err, moveAway)
	}
	for i := range f.Secrets {
		// one spelling per secret, so that secrets compare as strings
		b, _ := cookie.ParseSecret(f.Secrets[i].Secret)
		f.Secrets[i].Secret = base64.StdEncoding.EncodeToString(b)
	}
	return &f, nil
}

// loadBounded loads the stored ring, refusing one larger than MaxFileBytes (LoadBounded).
func loadBounded(ctx context.Context, stor certmagic.Storage) ([]byte, error) {
	b, err := LoadBounded(ctx, stor, StorageKey, MaxFileBytes, "a key ring")
	var be *BoundError
	if errors.As(err, &be) {
		return nil, fmt.Errorf("%v; %s", err, moveAway)
	}
	return b, err
}

// BoundError is a stored object LoadBounded refuses to read: too large, or not a regular file.
type BoundError struct{ msg string }

func (e *BoundError) Error() string { return e.msg }

// LoadBounded loads key from stor, refusing an object larger than limit bytes without reading
// it (a *BoundError, which names the object as what): from a file_system storage it reads at most that much, and only a
// regular file; from others it asks the size first. A missing object is an error that matches
// fs.ErrNotExist. The revocation store (internal/revoke) reads its file with it too.
func LoadBounded(ctx context.Context, stor certmagic.Storage, key string, limit int64, what string) ([]byte, error) {
	tooBig := func(size int64) error {
		return &BoundError{fmt.Sprintf("%s in %s is %d bytes, more than %s can be (%d at most): refusing to read it", key, StorageName(stor), size, what, limit)}
	}
	if fsys, ok := stor.(*certmagic.FileStorage); ok {
		fh, err := os.Open(fsys.Filename(key))
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		fi, err := fh.Stat()
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, &BoundError{fmt.Sprintf("%s in %s is not a regular file (mode %s)", key, StorageName(stor), fi.Mode())}
		}
		if fi.Size() > limit {
			return nil, tooBig(fi.Size())
		}
		b, err := io.ReadAll(io.LimitReader(fh, limit+1))
		if err == nil && int64(len(b)) > limit {
			return nil, tooBig(int64(len(b)))
		}
		return b, err
	}
	if info, err := stor.Stat(ctx, key); err == nil && info.Size > limit {
		return nil, tooBig(info.Size)
	}
	b, err := stor.Load(ctx, key)
	if err == nil && int64(len(b)) > limit {
		return nil, tooBig(int64(len(b)))
	}
	return b, err
}

// Check validates the whole ring, in time linear in its size.
func (f *File) Check() error {
	if f.Version != Version {
		return fmt.Errorf("unsupported version %d", f.Version)
	}
	if len(f.Secrets) == 0 || len(f.Secrets) > MaxSecrets {
		return fmt.Errorf("%d secrets, want 1 to %d", len(f.Secrets), MaxSecrets)
	}
	seen := make(map[string]int, len(f.Secrets))
	for i, s := range f.Secrets {
		b, err := cookie.ParseSecret(s.Secret)
		if err != nil {
			return fmt.Errorf("secret %d %v", i+1, err)
		}
		if j, dup := seen[string(b)]; dup {
			return fmt.Errorf("secret %d duplicates secret %d", i+1, j+1)
		}
		seen[string(b)] = i
		if s.Created.IsZero() {
			return fmt.Errorf("secret %d has no creation time", i+1)
		}
	}
	if f.Keep < 0 || f.CheckInterval < 0 {
		return errors.New("negative keep or check_interval")
	}
	return nil
}

// store writes f, checked by the caller (StoreBytes).
func store(ctx context.Context, stor certmagic.Storage, f *File) error {
	b, err := json.MarshalIndent(f, "", "\t")
	if err != nil {
		return err
	}
	return StoreBytes(ctx, stor, StorageKey, b)
}

// StoreBytes writes b to key. A file_system storage replaces a file by renaming a new one
// over it, which would turn a symbolic link into a file and leave the link's target stale:
// the link is written through instead.
func StoreBytes(ctx context.Context, stor certmagic.Storage, key string, b []byte) error {
	if fsys, ok := stor.(*certmagic.FileStorage); ok {
		p := fsys.Filename(key)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("%s is a symbolic link that does not resolve (%v): make it point to an existing file, or replace it with the file itself", p, err)
			}
			return writeFileAtomic(target, b)
		}
	}
	return stor.Store(ctx, key, b)
}

// writeFileAtomic replaces name by a new file, keeping its permissions (0600 for a new one).
func writeFileAtomic(name string, b []byte) error {
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(name); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// UnrecordedCheckInterval is the re-read interval assumed of the instances that wrote a ring
// recording none: 0.1.0 records no check_interval and re-reads every minute by default, so a
// secret rotated in waits for two of its re-reads before it signs.
const UnrecordedCheckInterval = time.Minute
