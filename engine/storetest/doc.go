// Package storetest is the conformance suite every engine.Store implementation runs, so that
// all stores behave alike: one suite, not one copy of the tests per store.
//
// A store's own test file calls Run with a Factory:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Factory{
//			Open: func(t *testing.T) engine.Store { return memstore.New(memstore.Options{}) },
//		})
//	}
//
// Persistent stores also set Factory.Reopen; the suite then checks that everything written,
// deleted or touched (and flushed) is the same after Close and a fresh open. The suite never
// sleeps: it passes explicit times, which stores must treat as the current time. Run it with
// -race: the cap and last-admin tests race many goroutines against one store.
package storetest
