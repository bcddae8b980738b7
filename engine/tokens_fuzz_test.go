package engine_test

// FuzzParseToken checks that ParseToken never panics, accepts only tokens of the documented
// shape (prefix, base64url of 32 random bytes and their CRC-32C) with the right kind and hash,
// and refuses every one-character change of a token it issued. The checksum is checked against
// hash/crc32's.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/engine"
)

func FuzzParseToken(f *testing.F) {
	dir := filepath.Join("..", "testdata", "fuzz", "FuzzParseToken")
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.Fatalf("seed corpus: %v", err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		// One token per file; a trailing newline is part of the seed only if doubled.
		f.Add(strings.TrimSuffix(string(data), "\n"), uint8(len(data)))
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	f.Fuzz(func(t *testing.T, token string, pos uint8) {
		p, err := engine.ParseToken(token)
		if err != nil {
			if !errors.Is(err, engine.ErrInvalidToken) || p != (engine.ParsedToken{}) {
				t.Fatalf("%q: error %v with %+v, want ErrInvalidToken alone", token, err, p)
			}
		} else {
			checkWellFormed(t, token, p)
		}

		// Any 32 bytes make a token that parses; every one-character change of it does not.
		random := sha256.Sum256([]byte(token))
		for _, permanent := range []bool{false, true} {
			issued, err := engine.NewToken(bytes.NewReader(random[:]), permanent)
			if err != nil {
				t.Fatal(err)
			}
			p, err := engine.ParseToken(issued)
			if err != nil || p.Permanent != permanent {
				t.Fatalf("issued token %q: %+v, %v", issued, p, err)
			}
			checkWellFormed(t, issued, p)
			i := int(pos) % len(issued)
			for _, c := range []byte(alphabet + "=+/ .\x00") {
				if c == issued[i] {
					continue
				}
				changed := issued[:i] + string(c) + issued[i+1:]
				if _, err := engine.ParseToken(changed); err == nil {
					t.Fatalf("%q (one character changed at %d from %q) parses", changed, i, issued)
				}
			}
			if _, err := engine.ParseToken(issued + "A"); err == nil {
				t.Fatal("a longer token parses")
			}
			if _, err := engine.ParseToken(issued[:len(issued)-1]); err == nil {
				t.Fatal("a shorter token parses")
			}
		}
	})
}

// checkWellFormed checks what ParseToken promises about a token it accepted.
func checkWellFormed(t *testing.T, token string, p engine.ParsedToken) {
	t.Helper()
	if len(token) != engine.TokenLength {
		t.Fatalf("%q accepted with length %d, want %d", token, len(token), engine.TokenLength)
	}
	prefix := token[:len(engine.TemporaryTokenPrefix)]
	if want := prefix == engine.PermanentTokenPrefix; want != p.Permanent || (prefix != engine.TemporaryTokenPrefix && prefix != engine.PermanentTokenPrefix) {
		t.Fatalf("%q accepted with prefix %q, permanent %v", token, prefix, p.Permanent)
	}
	body := token[len(prefix):]
	raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil || len(raw) != 36 || base64.RawURLEncoding.EncodeToString(raw) != body {
		t.Fatalf("%q accepted but its body is not canonical base64url of 36 bytes: %v", token, err)
	}
	if p.Hash != sha256.Sum256([]byte(token)) {
		t.Fatalf("%q: hash is not the SHA-256 of the token", token)
	}
	if sum := crc32.Checksum(append([]byte(prefix), raw[:32]...), crc32.MakeTable(crc32.Castagnoli)); binary.BigEndian.Uint32(raw[32:]) != sum {
		t.Fatalf("%q accepted but its checksum is not the CRC-32C (%08x) of its prefix and random bytes", token, sum)
	}
}
