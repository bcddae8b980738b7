package engine

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
)

// Token prefixes tell a temporary session token from a permanent one (an API key) at a glance,
// and make leaked tokens easy to find with secret scanners.
const (
	TemporaryTokenPrefix = "sdt_"
	PermanentTokenPrefix = "sdp_"
)

const (
	tokenRandomBytes = 32 // 256 bits from crypto/rand
	tokenCheckBytes  = 4  // CRC-32C of prefix and random bytes
	tokenBodyLen     = (tokenRandomBytes + tokenCheckBytes) * 4 / 3
	// TokenLength is the length in characters of every token sessiond issues.
	TokenLength = len(TemporaryTokenPrefix) + tokenBodyLen
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// NewToken returns a fresh token: a prefix telling temporary from permanent, then base64url
// of 32 random bytes from r and a CRC-32C checksum.
func NewToken(r io.Reader, permanent bool) (string, error) {
	var raw [tokenRandomBytes + tokenCheckBytes]byte
	if _, err := io.ReadFull(r, raw[:tokenRandomBytes]); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	prefix := TemporaryTokenPrefix
	if permanent {
		prefix = PermanentTokenPrefix
	}
	binary.BigEndian.PutUint32(raw[tokenRandomBytes:], tokenChecksum(prefix, raw[:tokenRandomBytes]))
	return prefix + base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

// tokenChecksum is the CRC-32C of prefix and random. It is computed with the table, byte by
// byte, rather than with crc32.Update: that one makes its argument escape, which costs two
// allocations on every token check, more than the 40 bytes cost to checksum this way.
func tokenChecksum(prefix string, random []byte) uint32 {
	crc := ^uint32(0)
	for i := 0; i < len(prefix); i++ {
		crc = crcTable[byte(crc)^prefix[i]] ^ crc>>8
	}
	for _, b := range random {
		crc = crcTable[byte(crc)^b] ^ crc>>8
	}
	return ^crc
}

// ParsedToken is what can be learned from a token without a store read.
type ParsedToken struct {
	Permanent bool
	Hash      TokenHash
}

// ParseToken checks a token's shape, prefix and checksum and returns its hash. Malformed
// tokens return ErrInvalidToken without touching the store.
func ParseToken(token string) (ParsedToken, error) {
	if len(token) != TokenLength {
		return ParsedToken{}, ErrInvalidToken
	}
	prefix := token[:len(TemporaryTokenPrefix)]
	var p ParsedToken
	switch prefix {
	case TemporaryTokenPrefix:
	case PermanentTokenPrefix:
		p.Permanent = true
	default:
		return ParsedToken{}, ErrInvalidToken
	}
	var raw [tokenRandomBytes + tokenCheckBytes]byte
	n, err := base64.RawURLEncoding.Decode(raw[:], []byte(token[len(prefix):]))
	if err != nil || n != len(raw) {
		return ParsedToken{}, ErrInvalidToken
	}
	if binary.BigEndian.Uint32(raw[tokenRandomBytes:]) != tokenChecksum(prefix, raw[:tokenRandomBytes]) {
		return ParsedToken{}, ErrInvalidToken
	}
	var text [TokenLength]byte // on the stack: []byte(token) would be a heap copy
	copy(text[:], token)
	p.Hash = sha256.Sum256(text[:])
	return p, nil
}

// Fingerprint is a short, non-reversible tag for a token, safe to log: the first 12 hex
// digits of its SHA-256.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}

// newID returns a random public identifier with the given prefix.
func newID(r io.Reader, prefix string) (string, error) {
	var raw [15]byte
	if _, err := io.ReadFull(r, raw[:]); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(raw[:]), nil
}
