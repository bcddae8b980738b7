// Package engine is everything sessiond knows and decides: accounts, sessions, API keys,
// user preferences, session clocks, limits, lockout and visibility rules.
//
// It holds no JSON-RPC, HTTP or transport vocabulary. The rpc package puts it on the wire and
// maps its errors to wire codes; storage is behind the Store interface (store.go), with a
// Badger implementation for the product and an in-memory one for tests and --in-memory.
package engine
