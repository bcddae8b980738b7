package badgerstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
)

// ImportSessions adds many sessions at once, without checking the session caps: for filling
// a store that no server is using yet (sessiond bench --populate), where InsertSession's
// transaction and sync per session would take minutes for a million. The sessions' accounts
// must exist and their ids and token hashes must be new; otherwise nothing of this call is
// added. The sessions are added to memory, then written in large batches and synced once:
// when ImportSessions returns nil they are durable. A concurrent reader may see them a moment
// before they are.
func (s *Store) ImportSessions(ctx context.Context, sessions []engine.Session) error {
	if len(sessions) == 0 {
		return ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return memstore.ErrClosed
	}
	// About what the import adds to Badger's log: a session's record is a few hundred bytes.
	size := uint64(walTxnOverhead) + uint64(len(sessions))*(512+walEntryOverhead)
	if err := s.space.allow(size, false); err != nil {
		return fmt.Errorf("badgerstore: import: %w", err)
	}
	var rejected []error
	refused := map[*engine.Session]bool{}
	err := s.mem.RestoreSessions(sessions, func(sess *engine.Session, err error) {
		rejected = append(rejected, err)
		refused[sess] = true
	})
	if err != nil {
		return fmt.Errorf("badgerstore: import: %w", err)
	}
	// undo removes from memory the sessions this call added, not those RestoreSessions
	// refused: their ids may belong to other sessions.
	undo := func() {
		var ids []string
		for i := range sessions {
			if !refused[&sessions[i]] {
				ids = append(ids, sessions[i].ID)
			}
		}
		_, _ = s.mem.DeleteSessions(context.Background(), ids, sessions[0].CreatedAt)
	}
	if len(rejected) > 0 {
		undo()
		return fmt.Errorf("badgerstore: import: %w", errors.Join(rejected...))
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	valueLog := false
	for i := range sessions {
		value := encodeSession(&sessions[i])
		if err = wb.Set(sessionKey(sessions[i].ID), value); err != nil {
			break
		}
		valueLog = valueLog || inValueLog(value)
	}
	if err == nil {
		err = wb.Flush()
	}
	if err == nil {
		s.committed.add(valueLog)
		err = s.syncer.sync()
	}
	if err != nil {
		undo()
		return fmt.Errorf("badgerstore: import: %w", err)
	}
	return nil
}
