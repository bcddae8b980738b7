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

// crcTables are CRC-32C tables for slicing by 8: crcTables[k][b] is the CRC of byte b
// followed by k zero bytes.
var crcTables = func() (t [8][256]uint32) {
	t[0] = *crc32.MakeTable(crc32.Castagnoli)
	for k := 1; k < len(t); k++ {
		for b := range t[k] {
			c := t[k-1][b]
			t[k][b] = t[0][byte(c)] ^ c>>8
		}
	}
	return t
}()

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

// tokenChecksum is the CRC-32C of prefix and random. It is computed here, eight bytes a
// step (slicing by 8), rather than with crc32.Update: that one makes its argument escape,
// which costs two allocations on every token check. Byte by byte (40 dependent table
// lookups) it took 11 % of a pingSession's request path; BenchmarkRequestPath/pingSession
// went from 675-681 ns to 638-641.
func tokenChecksum(prefix string, random []byte) uint32 {
	t := &crcTables
	crc := ^uint32(0)
	for i := 0; i < len(prefix); i++ {
		crc = t[0][byte(crc)^prefix[i]] ^ crc>>8
	}
	for ; len(random) >= 8; random = random[8:] {
		crc ^= binary.LittleEndian.Uint32(random)
		crc = t[7][byte(crc)] ^ t[6][byte(crc>>8)] ^ t[5][byte(crc>>16)] ^ t[4][crc>>24] ^
			t[3][random[4]] ^ t[2][random[5]] ^ t[1][random[6]] ^ t[0][random[7]]
	}
	for _, b := range random {
		crc = t[0][byte(crc)^b] ^ crc>>8
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
