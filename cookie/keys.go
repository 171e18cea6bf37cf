// Package cookie reads and writes the cookies signed_cookies issues, for a Go app behind it:
// keys derived from one secret string, a key ring for rotation, values signed (or signed and
// encrypted) in gorilla/securecookie's wire format, visitor IDs as UUIDs. It knows nothing of
// Caddy and uses the standard library only.
package cookie

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// MinSecretBytes is the least number of decoded bytes a secret must have.
const MinSecretBytes = 32

// HKDF labels: one secret yields independent signing and encryption keys.
const (
	hashKeyInfo  = "signed_cookies v1 hmac-sha256"
	blockKeyInfo = "signed_cookies v1 aes-256"
)

// ParseSecret decodes a base64 secret (standard or URL alphabet, padded or not), checks its
// length, and refuses a secret that is evidently not random (see weakness): anyone could guess
// it and forge cookies. Errors follow "secret N " and never include the secret.
func ParseSecret(s string) ([]byte, error) {
	b, weak, err := ParseOldSecret(s)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSecretBytes {
		return nil, fmt.Errorf("decodes to %d bytes, at most %d allowed; %s", len(b), MaxSecretBytes, makeSecret)
	}
	if weak != "" {
		return nil, fmt.Errorf("%s; %s", weak, makeSecret)
	}
	return b, nil
}

// ParseOldSecret decodes a secret as releases before strength checks accepted it: base64 of
// at least MinSecretBytes bytes, of any length and content. weak says why ParseSecret refuses
// it ("" if it does not): such a secret may still verify the cookies it signed, never sign.
func ParseOldSecret(s string) (b []byte, weak string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, "", errors.New("is empty")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err = enc.Strict().DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, "", errors.New("is not valid base64")
	}
	if len(b) < MinSecretBytes {
		return nil, "", fmt.Errorf("decodes to %d bytes, need at least %d", len(b), MinSecretBytes)
	}
	if len(b) > MaxSecretBytes {
		return b, fmt.Sprintf("decodes to %d bytes, more than %d", len(b), MaxSecretBytes), nil
	}
	return b, weakness(b), nil
}

// Key is the pair of keys derived from one secret.
type Key struct {
	hashKey  []byte
	blockKey []byte
	block    cipher.Block
	macs     sync.Pool // of *macState
}

// macState is an HMAC keyed with a Key's hashKey, with room for its sum: hmac.New costs 6
// allocations, and a sum written through the hash.Hash interface would escape to the heap.
type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// NewKey derives the signing and encryption keys of a secret with HKDF-SHA256.
func NewKey(secret []byte) (*Key, error) { return NewRealmKey(secret, "") }

// NewRealmKey derives the keys of a secret for one realm: the same secret gives unrelated keys
// in different realms, so a value signed in one does not verify in another. The realm ""
// gives NewKey's keys.
func NewRealmKey(secret []byte, realm string) (*Key, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("secret decodes to %d bytes, need at least %d", len(secret), MinSecretBytes)
	}
	suffix := ""
	if realm != "" {
		suffix = " realm=" + realm
	}
	hk, err := hkdf.Key(sha256.New, secret, nil, hashKeyInfo+suffix, 32)
	if err != nil {
		return nil, err
	}
	bk, err := hkdf.Key(sha256.New, secret, nil, blockKeyInfo+suffix, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(bk)
	if err != nil {
		return nil, err
	}
	k := &Key{hashKey: hk, blockKey: bk, block: block}
	k.macs.New = func() any { return &macState{h: hmac.New(sha256.New, k.hashKey)} }
	return k, nil
}

// HashKey is the HMAC-SHA256 key; with BlockKey it configures a securecookie.SecureCookie
// (with securecookie.NopEncoder) that reads and writes the same values as this package.
func (k *Key) HashKey() []byte { return k.hashKey }

// BlockKey is the AES-256 key.
func (k *Key) BlockKey() []byte { return k.blockKey }

// appendMAC appends the MAC of msg to dst.
func (k *Key) appendMAC(dst, msg []byte) []byte {
	m := k.macs.Get().(*macState)
	m.h.Reset()
	m.h.Write(msg)
	dst = m.h.Sum(dst)
	k.macs.Put(m)
	return dst
}

// verify reports, in constant time, whether mac is the MAC of msg.
func (k *Key) verify(msg, mac []byte) bool {
	m := k.macs.Get().(*macState)
	m.h.Reset()
	m.h.Write(msg)
	ok := subtle.ConstantTimeCompare(m.h.Sum(m.sum[:0]), mac) == 1
	k.macs.Put(m)
	return ok
}

// KeyRing is an immutable, ordered set of keys: the first signs, all verify.
type KeyRing struct {
	keys []*Key
}

// NewKeyRing derives a key ring from decoded secrets, newest (signing) first.
// Duplicate secrets are an error that names their positions (1-based).
func NewKeyRing(secrets ...[]byte) (*KeyRing, error) { return NewRealmKeyRing("", secrets...) }

// NewRealmKeyRing is NewKeyRing with the keys of a realm (see NewRealmKey).
func NewRealmKeyRing(realm string, secrets ...[]byte) (*KeyRing, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no secrets")
	}
	r := &KeyRing{}
	for i, s := range secrets {
		for j := 0; j < i; j++ {
			if hmac.Equal(s, secrets[j]) {
				return nil, fmt.Errorf("secret %d duplicates secret %d", i+1, j+1)
			}
		}
		k, err := NewRealmKey(s, realm)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %v", i+1, err)
		}
		r.keys = append(r.keys, k)
	}
	return r, nil
}

// Len is the number of keys.
func (r *KeyRing) Len() int { return len(r.keys) }

// Key returns the i-th key; 0 is the signing key. With Key.HashKey and Key.BlockKey it lets
// a Go app read the cookies with securecookie.
func (r *KeyRing) Key(i int) *Key { return r.keys[i] }
