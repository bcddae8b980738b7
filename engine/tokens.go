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
	binary.BigEndian.PutUint32(raw[tokenRandomBytes:], tokenChecksum(permanent, raw[:tokenRandomBytes]))
	return prefix + base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

// tokenChecksum is the CRC-32C of the prefix of a permanent or a temporary token and random.
// It is computed here, eight bytes a step (slicing by 8), rather than with crc32.Update: that
// one makes its argument escape, which costs two allocations on every token check. Byte by
// byte (40 dependent table lookups) it took 11 % of a pingSession's request path;
// BenchmarkRequestPath/pingSession went from 675-681 ns to 638-641. The prefix's part is
// computed once (crcAfter).
func tokenChecksum(permanent bool, random []byte) uint32 {
	t := &crcTables
	crc := crcAfter[0]
	if permanent {
		crc = crcAfter[1]
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

// crcAfter is the running CRC-32C (not yet inverted) after the temporary and after the
// permanent token prefix.
var crcAfter = [2]uint32{crcState(TemporaryTokenPrefix), crcState(PermanentTokenPrefix)}

func crcState(prefix string) uint32 {
	crc := ^uint32(0)
	for i := 0; i < len(prefix); i++ {
		crc = crcTables[0][byte(crc)^prefix[i]] ^ crc>>8
	}
	return crc
}

// base64URLValues maps a base64url character to its six bits, and every other byte to 0xff.
var base64URLValues = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// decodeTokenBody decodes a token's base64url body (tokenBodyLen characters, a multiple of
// four, so every such string is canonical) into raw, and reports whether every character
// was one of the alphabet. It does in a straight loop what base64.RawURLEncoding.Decode does
// with its general checks. With it and crcAfter, BenchmarkParseToken went from 110-116 ns to
// 101-111.
func decodeTokenBody(raw *[tokenRandomBytes + tokenCheckBytes]byte, body string) bool {
	if len(body) != tokenBodyLen {
		return false
	}
	t := &base64URLValues
	var bad byte
	for i, j := 0, 0; i+4 <= len(body) && j+3 <= len(raw); i, j = i+4, j+3 {
		a, b, c, d := t[body[i]], t[body[i+1]], t[body[i+2]], t[body[i+3]]
		bad |= a | b | c | d
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
		raw[j], raw[j+1], raw[j+2] = byte(v>>16), byte(v>>8), byte(v)
	}
	return bad < 64
}

// ParsedToken is what can be learned from a token without a store read.
type ParsedToken struct {
	Permanent bool
	Hash      TokenHash
}

// ParseToken checks a token's shape, prefix and checksum and returns its hash. Malformed
// tokens return ErrInvalidToken without touching the store.
func ParseToken(token string) (ParsedToken, error) {
	permanent, ok := tokenKind(token)
	if !ok {
		return ParsedToken{}, ErrInvalidToken
	}
	var raw [tokenRandomBytes + tokenCheckBytes]byte
	if !decodeTokenBody(&raw, token[len(TemporaryTokenPrefix):]) ||
		binary.BigEndian.Uint32(raw[tokenRandomBytes:]) != tokenChecksum(permanent, raw[:tokenRandomBytes]) {
		return ParsedToken{}, ErrInvalidToken
	}
	return ParsedToken{Permanent: permanent, Hash: hashToken(token)}, nil
}

// parseTokenShape is ParseToken without the body's alphabet and checksum: it checks the
// length and the prefix only. It is for a token looked up in memory next (Engine.lookupToken).
func parseTokenShape(token string) (ParsedToken, error) {
	permanent, ok := tokenKind(token)
	if !ok {
		return ParsedToken{}, ErrInvalidToken
	}
	return ParsedToken{Permanent: permanent, Hash: hashToken(token)}, nil
}

// tokenKind checks a token's length and prefix and says whether it is a permanent one.
func tokenKind(token string) (permanent, ok bool) {
	if len(token) != TokenLength {
		return false, false
	}
	switch token[:len(TemporaryTokenPrefix)] {
	case TemporaryTokenPrefix:
		return false, true
	case PermanentTokenPrefix:
		return true, true
	}
	return false, false
}

// hashToken is the SHA-256 of a token, the only form stores keep.
func hashToken(token string) TokenHash {
	var text [TokenLength]byte // on the stack: []byte(token) would be a heap copy
	copy(text[:], token)
	return sha256.Sum256(text[:])
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
