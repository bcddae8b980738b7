package redisstore

import (
	"encoding/hex"
	"strings"

	"github.com/sessiond/sessiond/engine"
)

// keyspace names every key of one store. See the package documentation for the layout.
type keyspace struct {
	// prefix starts every key: Options.KeyPrefix, wrapped in a hash tag in Cluster mode.
	prefix string
	// global starts the keys that are not one user's: prefix + "{g}:".
	global string
}

func newKeyspace(prefix string, cluster bool) keyspace {
	switch {
	case !cluster || hasHashTag(prefix):
	case prefix == "":
		prefix = "{sessiond}" // "{}" is no hash tag
	default:
		prefix = "{" + prefix + "}"
	}
	return keyspace{prefix: prefix, global: prefix + "{g}:"}
}

// hasHashTag reports whether s holds a Redis Cluster hash tag: a "{" followed later by a "}"
// with at least one byte between them. The first such pair in a key decides its slot.
func hasHashTag(s string) bool {
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return false
	}
	end := strings.IndexByte(s[open+1:], '}')
	return end > 0
}

// userEscaper keeps a user key from ending its hash tag early or from making two users' key
// names collide: "}" cannot appear inside the tag and "%" escapes itself.
var userEscaper = strings.NewReplacer("%", "%25", "}", "%7D")

// user starts the keys of one account: prefix + "{u:<userKey>}:".
func (k keyspace) user(userKey string) string {
	return k.prefix + "{u:" + userEscaper.Replace(userKey) + "}:"
}

func (k keyspace) account(userKey string) string      { return k.user(userKey) + "a" }
func (k keyspace) userSessions(userKey string) string { return k.user(userKey) + "x" }
func (k keyspace) preferences(userKey string) string  { return k.user(userKey) + "p" }
func (k keyspace) session(userKey, id string) string  { return k.user(userKey) + "s:" + id }

func (k keyspace) accounts() string    { return k.global + "accounts" }
func (k keyspace) admins() string      { return k.global + "admins" }
func (k keyspace) marker() string      { return k.global + "store" }
func (k keyspace) allSessions() string { return k.global + "x" }
func (k keyspace) sessionID(id string) string {
	return k.global + "i:" + id
}
func (k keyspace) token(h engine.TokenHash) string { return k.global + "t:" + hex.EncodeToString(h[:]) }

// address is the key of the sessions of a client address, "" for no address (not counted).
func (k keyspace) address(addr string) string {
	if addr == "" {
		return ""
	}
	return k.global + "addr:" + addr
}
