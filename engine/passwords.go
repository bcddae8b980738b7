package engine

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

const (
	saltBytes = 16
	keyBytes  = 32
)

// hasher computes argon2id hashes, at most cap(slots) at once: each hash allocates its
// memory parameter, so an unbounded login flood would otherwise exhaust memory. A hash that
// has started keeps its slot until it is done, even when its caller gives up (a client that
// disconnects): derive gets a context that is not cancelled, or clients that connect, send a
// login and leave at once would start hashes without bound, out of the throttle's sight. That
// context ends after the hash timeout only, so a helper that stopped answering holds no slot
// for good.
type hasher struct {
	params  HashParams
	slots   chan struct{}
	timeout time.Duration // bounds one hash's wait (Config.HashTimeout)
	rand    io.Reader
	derive  DeriveKeyFunc
	// dummy is verified against for unknown usernames so they cost the same as wrong
	// passwords: the configured parameters, a random salt and a key nothing derives.
	dummy string
}

func newHasher(params HashParams, concurrency int, timeout time.Duration, r io.Reader, derive DeriveKeyFunc) (*hasher, error) {
	if derive == nil {
		derive = deriveInProcess
	}
	h := &hasher{params: params, slots: make(chan struct{}, concurrency), timeout: timeout, rand: r, derive: derive}
	// The dummy needs the parameters, a salt and a key length, not a real key: verify never
	// accepts it. Computing one would keep a restart from serving for a hash, about 200 ms
	// when it is the first in a new helper process.
	salt := make([]byte, saltBytes)
	if _, err := io.ReadFull(r, salt); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	h.dummy = encodeHash(params, salt, make([]byte, keyBytes))
	return h, nil
}

func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *hasher) release() { <-h.slots }

// hash returns the PHC-style encoding of password's argon2id hash with a fresh salt.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltBytes)
	if _, err := io.ReadFull(h.rand, salt); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	key, err := h.deriveKey(ctx, []byte(password), salt, h.params, keyBytes)
	h.release()
	if err != nil {
		return "", err
	}
	return encodeHash(h.params, salt, key), nil
}

// encodeHash is the PHC-style encoding of an argon2id key.
func encodeHash(p HashParams, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		p.MemoryKiB, p.Iterations, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// verify reports whether password matches encoded. An empty or corrupt encoding is checked
// against the dummy hash instead, so every call costs one hash.
func (h *hasher) verify(ctx context.Context, password, encoded string) (bool, error) {
	p, salt, want, ok := decodeHash(encoded)
	if !ok {
		p, salt, want, _ = decodeHash(h.dummy)
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	got, err := h.deriveKey(ctx, []byte(password), salt, p, uint32(len(want)))
	h.release()
	if err != nil {
		return false, err
	}
	return ok && subtle.ConstantTimeCompare(got, want) == 1, nil
}

// deriveKey runs derive with a context that the caller giving up does not cancel (see
// hasher), and that ends after h.timeout.
func (h *hasher) deriveKey(ctx context.Context, password, salt []byte, p HashParams, keyLen uint32) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.timeout)
	defer cancel()
	key, err := h.derive(ctx, password, salt, p, keyLen)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("password hash: no result within %v: %w", h.timeout, err)
	}
	return key, err
}

// deriveInProcess is the default DeriveKeyFunc.
func deriveInProcess(_ context.Context, password, salt []byte, p HashParams, keyLen uint32) ([]byte, error) {
	return argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen), nil
}

func decodeHash(encoded string) (p HashParams, salt, key []byte, ok bool) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, false
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Parallelism); err != nil {
		return p, nil, nil, false
	}
	if p.MemoryKiB == 0 || p.Iterations == 0 || p.Parallelism == 0 {
		return p, nil, nil, false
	}
	var err error
	if salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return p, nil, nil, false
	}
	if key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(key) == 0 {
		return p, nil, nil, false
	}
	return p, salt, key, true
}
