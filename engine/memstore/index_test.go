package memstore

import (
	"fmt"
	"testing"
)

// An index finds every key when all digests collide, through adds and removals.
func TestIndexCollisions(t *testing.T) {
	var sl slabs
	x := newIndex(func(string) uint64 { return 42 }, func(r *record) string { return r.id })
	slots := map[string]slot{}
	add := func(id string) {
		n := sl.alloc()
		sl.at(n).id = id
		if !x.put(&sl, n) {
			t.Fatalf("put(%s) found a duplicate", id)
		}
		slots[id] = n
		dup := sl.alloc()
		sl.at(dup).id = id
		if x.put(&sl, dup) {
			t.Fatalf("put of a second %s succeeded", id)
		}
		sl.release(dup)
	}
	remove := func(id string) {
		x.del(&sl, slots[id])
		sl.release(slots[id])
		delete(slots, id)
	}
	check := func(when string) {
		t.Helper()
		if x.len() != len(slots) {
			t.Fatalf("%s: len %d; want %d", when, x.len(), len(slots))
		}
		for id, n := range slots {
			if got := x.get(&sl, id); got != n {
				t.Fatalf("%s: get(%s) = %d; want %d", when, id, got, n)
			}
		}
		if got := x.get(&sl, "absent"); got != 0 {
			t.Fatalf("%s: get(absent) = %d", when, got)
		}
	}
	for i := range 5 {
		add(fmt.Sprint("id", i))
	}
	check("after adding")
	remove("id0") // the one in primary: the others stay in overflow
	check("after removing the primary")
	dup := sl.alloc()
	sl.at(dup).id = "id1" // in overflow while the primary place is free
	if x.put(&sl, dup) {
		t.Fatal("put of a second id1 succeeded while the primary place was free")
	}
	sl.release(dup)
	add("id5") // takes the free primary place
	check("after re-adding")
	remove("id3")
	check("after removing an overflow entry")
	for id := range slots {
		remove(id)
	}
	check("after removing all")
}
