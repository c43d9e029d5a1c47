// Package oatable is a lock-free open-addressing hash table from a
// comparable key to a pointer: one Table[K, V] behind sad's SPI index
// (RFC 4301 §4.1: an inbound SA is found by SPI alone) and mip6's binding
// index (RFC 6275 §9.1: the binding cache, keyed by home address).
//
// # Concurrency contract
//
// Get and All take no lock and may run concurrently with everything; Get
// never allocates. Put, Delete and Reset are writers: the caller serialises them
// (one mutex) and Len belongs to them. A reader sees every writer that
// returned before it started, and sees an entry that a writer is changing
// either as it was or as it becomes, never a mix.
//
// Readers load the current table from an atomic pointer and probe linearly
// from the key's home slot. A slot is bound to one key for the table's
// whole life: the writer stores the key, a plain field, before it
// publishes the slot's first value with an atomic store, and never changes
// it afterwards, so a reader that loads a non-nil value may read the key
// and a hit can never pair a key with another key's value. The value
// pointer moves only
//
//	nil        -> value      insert of a new key (the slot's key set first)
//	value      -> value'     replace
//	value      -> tombstone  delete
//	tombstone  -> value      insert of the same key again
//
// so a slot never becomes empty again and a probe, which stops at the first
// empty slot, never loses a key that is further down its chain.
//
// Growth and the removal of tombstones rebuild the whole table (O(n),
// amortised O(1) per insert or delete) and publish it with one atomic
// store: a reader still on the old table sees it as it was at that moment,
// consistent but possibly stale. Every other update is one atomic store.
//
// # Hashing
//
// The caller's hash function gets the key and a random seed that is drawn
// again for every table built, so keys chosen by a peer (an SPI is picked
// by its receiver, RFC 4303 §2.1; home addresses share a /64) cannot be
// aimed at one probe chain. The table uses the low bits of the hash: mix
// every key bit into them, for example with Mix64.
package oatable
