package memstore

// The expiry heap is a min-heap of the sessions that can expire, ordered by dueEntry.at.
// Each such session has exactly one entry, found through record.heapIndex.

func (s *Store) heapPush(n slot) {
	r := s.slabs.at(n)
	r.heapIndex = int32(len(s.expiry))
	s.expiry = append(s.expiry, dueEntry{at: r.expiresAt, n: n})
	s.heapUp(len(s.expiry) - 1)
}

// heapRemove takes entry i out of the heap.
func (s *Store) heapRemove(i int) {
	h := s.expiry
	last := len(h) - 1
	s.slabs.at(h[i].n).heapIndex = -1
	if i != last {
		h[i] = h[last]
		s.slabs.at(h[i].n).heapIndex = int32(i)
	}
	s.expiry = h[:last]
	if i != last {
		s.heapDown(i)
		s.heapUp(i)
	}
}

// heapLower moves the entry of r earlier, to at.
func (s *Store) heapLower(r *record, at int64) {
	i := int(r.heapIndex)
	s.expiry[i].at = at
	s.heapUp(i)
}

func (s *Store) heapSwap(i, j int) {
	h := s.expiry
	h[i], h[j] = h[j], h[i]
	s.slabs.at(h[i].n).heapIndex = int32(i)
	s.slabs.at(h[j].n).heapIndex = int32(j)
}

func (s *Store) heapUp(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if s.expiry[parent].at <= s.expiry[i].at {
			return
		}
		s.heapSwap(i, parent)
		i = parent
	}
}

func (s *Store) heapDown(i int) {
	h := s.expiry
	for {
		smallest := i
		if l := 2*i + 1; l < len(h) && h[l].at < h[smallest].at {
			smallest = l
		}
		if r := 2*i + 2; r < len(h) && h[r].at < h[smallest].at {
			smallest = r
		}
		if smallest == i {
			return
		}
		s.heapSwap(i, smallest)
		i = smallest
	}
}

// popExpired takes up to limit of the sessions that have expired by now out of the expiry
// heap, the first due first, and returns them, still indexed otherwise. When it returns
// fewer than limit, every session left is live at now. The cost is in proportion to the
// sessions due, not to all sessions. The caller removes them with removeRecords, or puts
// them back with repush.
func (s *Store) popExpired(now int64, limit int) []slot {
	var expired []slot
	for len(s.expiry) > 0 && s.expiry[0].at <= now && len(expired) < limit {
		n := s.expiry[0].n
		r := s.slabs.at(n)
		switch {
		case !r.live(now):
			s.heapRemove(0)
			expired = append(expired, n)
		case r.expiry() == never:
			s.heapRemove(0)
		default: // touched since it was queued
			s.expiry[0].at = r.expiresAt
			s.heapDown(0)
		}
	}
	return expired
}

// repush undoes popExpired.
func (s *Store) repush(expired []slot) {
	for _, n := range expired {
		s.heapPush(n)
	}
}
