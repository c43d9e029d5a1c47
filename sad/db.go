package sad

// Locking. DB.mu serialises the writers (Add, Replace, Delete, Close, the
// removal of hard-expired SAs) and the control-plane readers that need a
// consistent view (List, Len, OutboundSPIFor). The packet path takes no
// lock: Inbound and Outbound read the SPI index (index.go) lock-free, and
// an SA's Seal and Open touch only its own atomics. db.events.mu guards the
// expiry queue and every SA's softFired/hardFired; it may be taken while
// DB.mu is held (Replace), never the other way round.

import (
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/mipsec/mipsec/esp"
)

// Errors returned by the DB's writers, wrapped with the details; test
// with errors.Is. Errors from esp parameter validation are wrapped too.
var (
	// ErrInvalidConfig: a Config failed validation; nothing was changed.
	ErrInvalidConfig = errors.New("sad: invalid SA config")
	// ErrDuplicateSPI: an SA with that SPI already exists in that
	// direction; nothing was changed. Use Replace to swap it.
	ErrDuplicateSPI = errors.New("sad: duplicate SPI")
	// ErrNotFound: no SA with that SPI in that direction.
	ErrNotFound = errors.New("sad: no such SA")
	// ErrClosed: the DB was closed.
	ErrClosed = errors.New("sad: database closed")
)

// Options configure a DB.
type Options struct {
	// OnExpire receives the soft and hard lifetime events (see Event),
	// one at a time, in order, on a goroutine of the DB's: never on the
	// packet path. It may call the DB (to Add a replacement, or Delete).
	// It must not block for long: later events wait for it. Nil ignores
	// the events; hard-expired SAs are removed all the same.
	OnExpire func(Event)
}

// Config describes one SA to add.
type Config struct {
	// Name is optional, for people and logs; it need not be unique.
	Name string
	// Dir says whether the SA seals (Outbound) or opens (Inbound).
	Dir Direction
	// Params is the ESP transform; Params.SPI is the SA's SPI, non-zero
	// (RFC 4303 §2.1). The SA does not keep the keys: esp does.
	Params esp.Params
	// Selectors are the traffic selectors the SA was created for, at
	// least one (RFC 4301 §4.4.2 "Traffic selectors"). An inbound SA
	// checks every decrypted packet against them (RFC 4301 §5.2); the
	// query API reads them. The DB keeps its own copy.
	Selectors []Selector
	// Lifetime holds the soft and hard limits; zero means unlimited.
	Lifetime Lifetime
}

// DB is the Security Association Database (RFC 4301 §4.4.2): inbound and
// outbound SAs, each indexed by SPI alone (RFC 4301 §4.1, RFC 4303 §2.1).
// The two directions are separate indexes: the receiver picks every SPI,
// so an outbound SPI (picked by the peer) may equal one of our inbound
// SPIs.
//
// All methods are safe for concurrent use. Inbound and Outbound are the
// packet-path lookups: lock-free, O(1), allocation-free, and consistent with
// every writer that returned before the call.
type DB struct {
	mu     sync.Mutex
	in     index
	out    index
	closed bool
	// The outbound SAs again, for OutboundSPIFor: by the single remote
	// address their selectors pin, or in wide when a selector does not
	// pin one.
	remote map[netip.Addr][]*SA
	wide   []*SA

	events   events
	onExpire func(Event)
}

// New returns an empty DB.
func New(opts Options) *DB {
	db := &DB{remote: make(map[netip.Addr][]*SA), onExpire: opts.OnExpire}
	db.in.init()
	db.out.init()
	db.events.db = db
	return db
}

func (db *DB) idx(d Direction) *index {
	if d == Inbound {
		return &db.in
	}
	return &db.out
}

// Inbound returns the live inbound SA with this SPI, or nil. It is the
// lookup of RFC 4301 §5.2 step 3a / RFC 4303 §3.4.2, by SPI alone: the
// outer addresses are not part of it, which is what lets a mobile node's
// care-of address change under its SAs (DR-5; ARCHITECTURE.md, the
// unmodified-IPsec rules). Lock-free, O(1), zero allocations.
func (db *DB) Inbound(spi uint32) *SA { return live(db.in.get(spi)) }

// Outbound returns the live outbound SA with this SPI, or nil. Lock-free,
// O(1), zero allocations.
func (db *DB) Outbound(spi uint32) *SA { return live(db.out.get(spi)) }

// Lookup returns the live SA with this SPI in direction dir, or nil.
func (db *DB) Lookup(dir Direction, spi uint32) *SA {
	switch dir {
	case Inbound:
		return db.Inbound(spi)
	case Outbound:
		return db.Outbound(spi)
	}
	return nil
}

func live(s *SA) *SA {
	for s != nil && s.Expired() {
		s = s.next.Load()
	}
	return s
}

// Add creates an SA from cfg and indexes it. It fails with
// ErrInvalidConfig (bad direction, SPI 0, no or malformed selectors, a soft
// limit above its hard limit), with esp's error wrapped (bad keys,
// algorithm, mode, tunnel addresses), with ErrDuplicateSPI when a live SA
// has the SPI in that direction, or with ErrClosed. A hard-expired SA not
// yet removed does not count as a duplicate: it is replaced.
func (db *DB) Add(cfg Config) (*SA, error) {
	s, err := db.newSA(&cfg)
	if err != nil {
		return nil, err
	}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		s.destroy()
		return nil, ErrClosed
	}
	x := db.idx(s.dir)
	if i, old := x.find(s.spi); old != nil {
		if !old.Expired() {
			db.mu.Unlock()
			s.destroy()
			return nil, fmt.Errorf("%w: %v SA %#x", ErrDuplicateSPI, s.dir, s.spi)
		}
		// Hard-expired, its event not yet handled: take its place.
		db.unlinkRemote(old)
		old.linked = false
		x.replaceAt(i, s)
	} else {
		x.insert(s)
	}
	s.linked = true
	db.linkRemote(s)
	db.startTimers(s)
	db.mu.Unlock()
	return s, nil
}

// Replace swaps the SA with cfg's direction and SPI for a new one built
// from cfg, for example on a configuration reload that changes selectors
// or lifetimes, and destroys the old one. No other SA is disturbed. The
// new SA has new counters and lifetimes. What happens to the ESP state
// depends on the keys:
//
//   - New keys: the new SA starts from cfg.Params (sequence numbers from
//     InitialSeq, an empty replay window). The swap is atomic: a packet
//     finds either the old or the new SA.
//   - The same keys and the same esp Params: the new SA takes over the old
//     one's esp state, so sequence numbers and the replay window simply
//     continue. The swap is atomic too.
//   - The same keys with other esp Params (mode, tunnel addresses, window,
//     ...): the old SA is stopped first and its packets in flight finish;
//     then the new SA starts after the last sequence number the old one
//     sent (outbound), or with a window that refuses every sequence number
//     up to the highest one the old SA accepted (inbound: InitialSeq is
//     raised to that number plus the old window, so one later number is
//     lost). Packets that find the SPI during the swap (microseconds) are
//     dropped. With these keys anything else would reuse AES-GCM or
//     ChaCha20-Poly1305 nonces (RFC 4106 §3, RFC 7634 §2) or accept
//     replays (RFC 4303 §3.4.3). ESN cannot be switched then
//     (ErrInvalidConfig).
//
// Replace fails like Add, or with ErrNotFound when there is no SA to
// replace; then nothing changed. It returns the new SA and the old one,
// whose Stats stay readable. The old SA's lifetime events not yet queued
// are cancelled.
func (db *DB) Replace(cfg Config) (sa, old *SA, err error) {
	s, err := db.newSA(&cfg) // validates cfg, esp Params included
	if err != nil {
		return nil, nil, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	fail := func(err error) (*SA, *SA, error) {
		s.destroy()
		return nil, nil, err
	}
	if db.closed {
		return fail(ErrClosed)
	}
	x := db.idx(s.dir)
	i, old := x.find(s.spi)
	if old == nil {
		return fail(fmt.Errorf("%w: %v SA %#x", ErrNotFound, s.dir, s.spi))
	}
	if s.keyFP == old.keyFP {
		if reflect.DeepEqual(s.params, old.params) && !old.Expired() {
			// Same transform: hand the esp state over.
			s.destroyESP()
			s.out, s.in = old.out, old.in
			old.sharedESP = true
		} else {
			if old.params.ESN != s.params.ESN {
				return fail(fmt.Errorf("%w: %v SA %#x: the same keys cannot switch ESN (new keys, or Delete and Add)", ErrInvalidConfig, s.dir, s.spi))
			}
			db.events.cancel(old)
			old.kill()
			old.drain()
			if seq := carrySeq(old); seq > cfg.Params.InitialSeq {
				// The same Params with a later start cannot fail: the
				// first build accepted them, and seq is within the
				// same sequence space.
				c := cfg
				c.Params.InitialSeq = seq
				s.destroy()
				if s, err = db.newSA(&c); err != nil {
					panic(fmt.Sprintf("sad: rebuilding %v SA %#x from seq %d: %v", cfg.Dir, cfg.Params.SPI, seq, err))
				}
			}
		}
	}
	old.next.Store(s)
	x.replaceAt(i, s)
	db.unlinkRemote(old)
	old.linked = false
	s.linked = true
	db.linkRemote(s)
	db.startTimers(s)
	db.events.cancel(old)
	old.destroy()
	return s, old, nil
}

// carrySeq is the InitialSeq a successor with the same keys needs so that
// it repeats no sequence number of the stopped SA old (outbound) or
// accepts none the old one may have accepted (inbound).
func carrySeq(old *SA) uint64 {
	if old.out != nil {
		return old.out.Seq()
	}
	t := old.in.ReplayHighest()
	if t == 0 {
		return 0 // nothing accepted, or NoReplay
	}
	// A window positioned at T+W calls everything <= T too old
	// (RFC 4303 §3.4.3); only T+W itself is marked as seen.
	maxSeq := uint64(math.MaxUint32)
	if old.params.ESN {
		maxSeq = math.MaxUint64
	}
	w := uint64(old.params.ReplayWindow)
	if t > maxSeq-w {
		return maxSeq
	}
	return t + w
}

// Delete removes the SA with this direction and SPI, zeroes its keys and
// returns it: it is dead (Seal and Open answer esp.DropExpired), and its
// Stats stay readable. Packets already inside esp on other goroutines
// finish first. Its lifetime events not yet queued are cancelled.
func (db *DB) Delete(dir Direction, spi uint32) (*SA, error) {
	if dir != Inbound && dir != Outbound {
		return nil, fmt.Errorf("%w: direction %d", ErrNotFound, dir)
	}
	db.mu.Lock()
	x := db.idx(dir)
	i, s := x.find(spi)
	if s == nil {
		db.mu.Unlock()
		return nil, fmt.Errorf("%w: %v SA %#x", ErrNotFound, dir, spi)
	}
	x.removeAt(i)
	s.linked = false
	db.unlinkRemote(s)
	db.mu.Unlock()
	db.events.cancel(s)
	s.destroy()
	return s, nil
}

// Close deletes every SA (zeroing the keys) and makes later Add and
// Replace calls fail with ErrClosed. Events already queued may still be
// delivered after Close returns; Close does not wait for them, so OnExpire
// may call it.
func (db *DB) Close() {
	db.mu.Lock()
	db.closed = true
	var all []*SA
	collect := func(s *SA) { all = append(all, s) }
	db.in.each(collect)
	db.out.each(collect)
	db.in.reset()
	db.out.reset()
	for _, s := range all {
		s.linked = false
		s.wideIdx, s.remoteKeys = -1, nil
	}
	clear(db.remote)
	db.wide = nil
	db.mu.Unlock()
	for _, s := range all {
		db.events.cancel(s)
		s.destroy()
	}
}

// reap removes a hard-expired SA from the DB (unless Delete or Replace
// already did) and destroys it. Called by the event goroutine.
func (db *DB) reap(s *SA) {
	db.mu.Lock()
	if s.linked {
		x := db.idx(s.dir)
		if i, cur := x.find(s.spi); cur == s {
			x.removeAt(i)
		}
		s.linked = false
		db.unlinkRemote(s)
	}
	db.mu.Unlock()
	s.destroy()
}

// Len returns the number of SAs in the DB, both directions, including
// hard-expired ones not yet removed (microseconds).
func (db *DB) Len() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.in.live + db.out.live
}

// List returns the SAs in the DB, live ones only, outbound before inbound
// and by SPI within a direction. The slice is new; the SAs are shared.
func (db *DB) List() []*SA {
	db.mu.Lock()
	all := make([]*SA, 0, db.in.live+db.out.live)
	collect := func(s *SA) {
		if !s.Expired() {
			all = append(all, s)
		}
	}
	db.out.each(collect)
	db.in.each(collect)
	db.mu.Unlock()
	slices.SortFunc(all, func(a, b *SA) int {
		if c := cmp.Compare(a.dir, b.dir); c != 0 {
			return c
		}
		return cmp.Compare(a.spi, b.spi)
	})
	return all
}

// startTimers arms s's time lifetimes. Called with db.mu held, which
// orders the timer fields before destroy reads them (destroy follows a
// db.mu section: Delete, Replace, reap, Close).
func (db *DB) startTimers(s *SA) {
	if d := s.life.Soft.Time; d > 0 {
		s.timers[0] = time.AfterFunc(d, func() { db.events.fire(s, false, ReasonTime) })
	}
	if d := s.life.Hard.Time; d > 0 {
		s.timers[1] = time.AfterFunc(d, func() { s.expire(ReasonTime) })
	}
}

// newSA validates cfg and builds an SA that is not yet in the DB.
func (db *DB) newSA(cfg *Config) (*SA, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &SA{
		spi:       cfg.Params.SPI,
		dir:       cfg.Dir,
		name:      cfg.Name,
		sels:      slices.Clone(cfg.Selectors),
		life:      cfg.Lifetime,
		hardPkts:  limit(cfg.Lifetime.Hard.Packets),
		hardBytes: limit(cfg.Lifetime.Hard.Bytes),
		created:   time.Now(),
		db:        db,
		wideIdx:   -1,
	}
	// The packet path compares with the soft limits until the soft event
	// fires, then with the hard ones (events.fire).
	s.trigPkts.Store(min(limit(cfg.Lifetime.Soft.Packets), s.hardPkts))
	s.trigBytes.Store(min(limit(cfg.Lifetime.Soft.Bytes), s.hardBytes))
	s.keyFP = keyFingerprint(&cfg.Params)
	var err error
	if s.dir == Outbound {
		if s.out, err = esp.NewOutbound(cfg.Params); err == nil {
			s.params = s.out.Params()
		}
	} else {
		if s.in, err = esp.NewInbound(cfg.Params); err == nil {
			s.params = s.in.Params()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sad: %v SA %#x: %w", s.dir, s.spi, err)
	}
	return s, nil
}

func (c *Config) validate() error {
	if c.Dir != Inbound && c.Dir != Outbound {
		return fmt.Errorf("%w: direction %d", ErrInvalidConfig, c.Dir)
	}
	if c.Params.SPI == 0 {
		return fmt.Errorf("%w: SPI 0 is reserved and never sent (RFC 4303 §2.1)", ErrInvalidConfig)
	}
	if err := validateSelectors(c.Selectors); err != nil {
		return fmt.Errorf("%v SA %#x: %w", c.Dir, c.Params.SPI, err)
	}
	if err := c.Lifetime.validate(); err != nil {
		return fmt.Errorf("%v SA %#x: %w", c.Dir, c.Params.SPI, err)
	}
	return nil
}

// validateSelectors applies the rules spd applies to policies, but per
// selector set: at least one set; each address range ANY or From <= To of
// one family, without zones; IPv4 and IPv6 not mixed within a set (RFC
// 4301 §4.4.1.1); port ranges not empty. Sets of different families may
// share an SA: an IKEv2 Child SA can be negotiated for IPv4 and IPv6
// traffic selector pairs at once (RFC 7296 §2.9), while each SPD entry,
// one per pair, keeps one family (spd's index is per family).
func validateSelectors(sels []Selector) error {
	if len(sels) == 0 {
		return fmt.Errorf("%w: no selectors (RFC 4301 §4.4.2 needs the SA's traffic selectors)", ErrInvalidConfig)
	}
	if err := validateSets(sels, "selector", true); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}

// fpKey keys the key fingerprints, so that they say nothing about the keys
// outside this process.
var fpKey = func() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}()

// keyFingerprint tells whether two Params carry the same keys (Replace)
// without the SA keeping them.
func keyFingerprint(p *esp.Params) [sha256.Size]byte {
	m := hmac.New(sha256.New, fpKey)
	var n [8]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(p.EncKey)))
	binary.BigEndian.PutUint32(n[4:], uint32(len(p.AuthKey)))
	m.Write(n[:])
	m.Write(p.EncKey)
	m.Write(p.AuthKey)
	var fp [sha256.Size]byte
	m.Sum(fp[:0])
	return fp
}
