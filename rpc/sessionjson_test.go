package rpc

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestSessionAppendJSON checks that Session.appendJSON and SessionsResult.appendJSON write
// what encoding/json writes (HTML escaping off, as replies are encoded), for sessions with
// every field filled at random, so that a field added to Session and not to appendJSON fails
// it: byte for byte when the strings need no escaping, the same JSON value otherwise (the two
// escape some characters differently).
func TestSessionAppendJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		plain := i%2 == 0
		var s Session
		fillRandom(rng, reflect.ValueOf(&s).Elem(), plain)
		checkSameJSON(t, s.appendJSON(nil), s, plain)
	}
	for _, r := range []SessionsResult{{}, {Sessions: []Session{}}} {
		checkSameJSON(t, r.appendJSON(nil), r, true)
	}
	var r SessionsResult
	for range 3 {
		var s Session
		fillRandom(rng, reflect.ValueOf(&s).Elem(), false)
		r.Sessions = append(r.Sessions, s)
	}
	checkSameJSON(t, r.appendJSON(nil), r, false)
}

// TestAppendTimestamp checks that a time in any zone is written in UTC, to the second:
// Timestamp.MarshalJSON writes with appendTimestamp too, so TestSessionAppendJSON cannot.
func TestAppendTimestamp(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 30, 15, 999_999_999, time.FixedZone("CET", 3600))
	if got, want := string(appendTimestamp(nil, at)), `"2026-11-24T09:30:15Z"`; got != want {
		t.Errorf("appendTimestamp = %s, want %s", got, want)
	}
}

// checkSameJSON compares got with encoding/json's encoding of v.
func checkSameJSON(t *testing.T, got []byte, v any, plain bool) {
	t.Helper()
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	wantBytes := bytes.TrimSuffix(want.Bytes(), []byte("\n"))
	if plain {
		if !bytes.Equal(got, wantBytes) {
			t.Fatalf("appendJSON:\n%s\nencoding/json:\n%s", got, wantBytes)
		}
		return
	}
	if !utf8.Valid(got) {
		t.Fatalf("appendJSON wrote invalid UTF-8:\n%q", got) // Unmarshal would take it as U+FFFD
	}
	var gotValue, wantValue any
	if err := json.Unmarshal(got, &gotValue); err != nil {
		t.Fatalf("appendJSON wrote invalid JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(wantBytes, &wantValue); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotValue, wantValue) {
		t.Fatalf("appendJSON:\n%s\nencoding/json:\n%s", got, wantBytes)
	}
}

// fillRandom sets v, and every field and element in it, to random values: zero ones too,
// and, unless plain, strings that need escaping.
func fillRandom(rng *rand.Rand, v reflect.Value, plain bool) {
	if v.Type() == reflect.TypeFor[Timestamp]() {
		v.Set(reflect.ValueOf(Timestamp(time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(time.FixedZone("", 3600)))))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(randomString(rng, plain))
	case reflect.Int, reflect.Int64:
		v.SetInt(rng.Int64N(1<<40) - 1<<39)
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 1)
	case reflect.Slice:
		switch n := rng.IntN(4); n {
		case 0:
			v.Set(reflect.Zero(v.Type()))
		default:
			v.Set(reflect.MakeSlice(v.Type(), n-1, n-1))
			for i := range v.Len() {
				fillRandom(rng, v.Index(i), plain)
			}
		}
	case reflect.Pointer:
		if rng.IntN(3) == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fillRandom(rng, v.Elem(), plain)
	case reflect.Struct:
		for i := range v.NumField() {
			fillRandom(rng, v.Field(i), plain)
		}
	default:
		panic("fillRandom: no values for " + v.Type().String())
	}
}

// randomString returns "" a quarter of the time, else up to 12 characters: letters and
// digits when plain, otherwise also quotes, backslashes, HTML characters, control characters,
// non-ASCII, U+2028 and invalid UTF-8.
func randomString(rng *rand.Rand, plain bool) string {
	if rng.IntN(4) == 0 {
		return ""
	}
	pieces := []string{"a", "Z", "0", "-", "_", ".", " "}
	if !plain {
		pieces = append(pieces, `"`, `\`, "<", ">", "&", "\n", "\t", "\r", "\x00", "\x08", "\x0c", "\x1f", "é", "😀", "\u2028", "\u2029", "\xff", "\xe2\x82")
	}
	var b strings.Builder
	for range rng.IntN(13) {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}
