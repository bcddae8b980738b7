package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
)

// Benchmarks of every store use sessions shaped like the engine's: a UUID-sized id, a random
// token hash, the default settings, spread over BenchUsers accounts and BenchAddresses client
// addresses.
const (
	BenchUsers     = 1000
	BenchAddresses = 1000
)

// BenchAccounts returns the accounts that own the benchmark sessions, user0 to user999.
func BenchAccounts(now time.Time) []*engine.Account {
	accounts := make([]*engine.Account, BenchUsers)
	for u := range accounts {
		accounts[u] = &engine.Account{Username: fmt.Sprintf("user%d", u), CreatedAt: now}
	}
	return accounts
}

// BenchSession returns the i-th benchmark session, created and last used at now. Ids sort
// in the order of i.
func BenchSession(i int, now time.Time) *engine.Session {
	s := &engine.Session{
		ID:             fmt.Sprintf("%08x-%04x-4000-8000-%012x", i, i&0xffff, i),
		Username:       fmt.Sprintf("user%d", i%BenchUsers),
		Origin:         engine.OriginCreateSession,
		CreatedAt:      now,
		LastAccessedAt: now,
		LastActiveAt:   now,
		ClientAddress:  fmt.Sprintf("10.0.%d.%d", (i%BenchAddresses)/256, (i%BenchAddresses)%256),
		Settings: engine.SessionSettings{
			DefaultAPI:                   "db",
			DefaultDebug:                 "max",
			DefaultDatabaseName:          "ctreeSQL",
			DefaultOwnerName:             "admin",
			DefaultBinaryFormat:          "hex",
			DefaultResponseOptions:       engine.ResponseOptions{BinaryFormat: "hex", DataFormat: "objects", NumberFormat: "number"},
			DefaultRetentionPolicy:       "autoPurge",
			DefaultRetentionUnit:         "week",
			DefaultRetentionPeriod:       4,
			IdleConnectionTimeoutSeconds: 1800,
			IdleCursorTimeoutSeconds:     600,
		},
	}
	_, _ = rand.Read(s.TokenHash[:])
	return s
}

// Populate creates the benchmark accounts in s and inserts sessions 0 to n-1 through the
// store's own InsertSession, without caps, and returns their token hashes. A store that
// syncs every insert should fill itself another way (badgerstore writes its files directly).
func Populate(tb testing.TB, s engine.Store, n int, now time.Time) []engine.TokenHash {
	tb.Helper()
	ctx := context.Background()
	for _, a := range BenchAccounts(now) {
		if err := s.CreateAccount(ctx, a); err != nil {
			tb.Fatal(err)
		}
	}
	hashes := make([]engine.TokenHash, n)
	for i := range n {
		sess := BenchSession(i, now)
		hashes[i] = sess.TokenHash
		if err := s.InsertSession(ctx, sess, engine.Caps{}, now); err != nil {
			tb.Fatal(err)
		}
	}
	return hashes
}
