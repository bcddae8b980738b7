package memstore

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
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
		checkIndex(t, when, &x, &sl, slots)
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
		t.Fatal("put of a second id1 succeeded while its home place was free")
	}
	sl.release(dup)
	add("id5")
	check("after re-adding")
	remove("id3")
	check("after removing one in the middle")
	for id := range slots {
		remove(id)
	}
	check("after removing all")
}

// An index agrees with a map through random adds and removals, with digests that spread,
// that cluster in a few home places, and that cluster at the end of the table so that
// probes wrap around to its start.
func TestIndexAgainstMap(t *testing.T) {
	digests := map[string]func(string) uint64{
		"spread":    idDigest(maphash.MakeSeed()),
		"clustered": func(id string) uint64 { return uint64(len(id)) % 3 },
		"wrapping":  func(id string) uint64 { return 1<<32 - 1 - uint64(len(id))%2 },
	}
	for name, digest := range digests {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			var sl slabs
			x := newIndex(digest, func(r *record) string { return r.id })
			want := map[string]slot{}
			for op := range 20_000 {
				id := fmt.Sprint("s", rng.IntN(600), "-", rng.IntN(2))
				if n, ok := want[id]; ok && rng.IntN(2) == 0 {
					x.del(&sl, n)
					sl.release(n)
					delete(want, id)
				} else {
					n := sl.alloc()
					sl.at(n).id = id
					if added := x.put(&sl, n); added == ok {
						t.Fatalf("op %d: put(%s) = %v with the id present: %v", op, id, added, ok)
					}
					if ok {
						sl.release(n)
					} else {
						want[id] = n
					}
				}
				if op%97 != 0 {
					continue
				}
				checkIndex(t, fmt.Sprint("op ", op), &x, &sl, want)
			}
		})
	}
}

// checkIndex fails unless x holds exactly the ids in want, at their slots: its length, a
// lookup of each, a lookup and a deletion of an absent id (which changes nothing), and all.
func checkIndex(t *testing.T, when string, x *index[string], sl *slabs, want map[string]slot) {
	t.Helper()
	if x.len() != len(want) {
		t.Fatalf("%s: len %d; want %d", when, x.len(), len(want))
	}
	for id, n := range want {
		if got := x.get(sl, id); got != n {
			t.Fatalf("%s: get(%s) = %d; want %d", when, id, got, n)
		}
	}
	if got := x.get(sl, "absent"); got != 0 {
		t.Fatalf("%s: get(absent) = %d", when, got)
	}
	absent := sl.alloc()
	sl.at(absent).id = "absent"
	x.del(sl, absent) // removes nothing
	sl.release(absent)
	if x.len() != len(want) {
		t.Fatalf("%s: deleting an absent id changed len to %d", when, x.len())
	}
	all := x.all()
	slices.Sort(all)
	slots := make([]slot, 0, len(want))
	for _, n := range want {
		slots = append(slots, n)
	}
	slices.Sort(slots)
	if !slices.Equal(all, slots) {
		t.Fatalf("%s: all() = %v; want %v", when, all, slots)
	}
}
