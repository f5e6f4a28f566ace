package transparent

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// The namespace's address plan (see the package documentation).
var (
	gateway4   = netip.MustParseAddr("240.0.0.1")
	inside4    = netip.MustParseAddr("240.0.0.2")
	synthetic4 = netip.MustParsePrefix("240.128.0.0/9")

	gateway6   = netip.MustParseAddr("fd74:7078:7479::1")
	inside6    = netip.MustParseAddr("fd74:7078:7479::2")
	synthetic6 = netip.MustParsePrefix("fd74:7078:7479:1::/64")
)

// poolSize is how many names the synthetic ranges can tell apart: the IPv4 range's size.
// Index i stands for the i-th address of both ranges.
const poolSize = 1 << (32 - 9)

// syntheticAddrs returns the IPv4 and IPv6 addresses that stand for pool index i.
func syntheticAddrs(i uint32) (netip.Addr, netip.Addr) {
	a4 := synthetic4.Addr().As4()
	b4 := [4]byte{a4[0], a4[1] | byte(i>>16), byte(i >> 8), byte(i)}
	a16 := synthetic6.Addr().As16()
	a16[12], a16[13], a16[14], a16[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom4(b4), netip.AddrFrom16(a16)
}

// syntheticIndex returns the pool index that a (IPv4 or IPv6) stands for, and whether a is
// in a synthetic range at all.
func syntheticIndex(a netip.Addr) (uint32, bool) {
	a = a.Unmap()
	switch {
	case synthetic4.Contains(a):
		b := a.As4()
		return uint32(b[1]&0x7f)<<16 | uint32(b[2])<<8 | uint32(b[3]), true
	case synthetic6.Contains(a):
		b := a.As16()
		i := uint32(b[12])<<24 | uint32(b[13])<<16 | uint32(b[14])<<8 | uint32(b[15])
		return i, i < poolSize && b[8]|b[9]|b[10]|b[11] == 0
	}
	return 0, false
}

// nameTable maps tunneled names to pool indices and back. It holds at most max names; a
// name unused (neither looked up nor connected to) for idle is forgotten, and when the table
// is full the least recently used name goes first. Indices are handed out in turn over the
// whole pool, so that an index comes back into use only after every other one has: an
// address a program still caches from an old answer does not quietly lead to another name.
// Safe for concurrent use.
type nameTable struct {
	max  int
	idle time.Duration
	now  func() time.Time

	mu      sync.Mutex
	byName  map[string]*list.Element // of *nameEntry
	byIndex map[uint32]*list.Element
	lru     list.List // front: most recently used
	next    uint32
}

type nameEntry struct {
	name  string
	index uint32
	used  time.Time
}

func newNameTable(max int, idle time.Duration, now func() time.Time) *nameTable {
	return &nameTable{
		max: max, idle: idle, now: now,
		byName:  make(map[string]*list.Element),
		byIndex: make(map[uint32]*list.Element),
		next:    1,
	}
}

// assign returns name's pool index, giving it a new one when the table does not hold it.
func (t *nameTable) assign(name string) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.expireLocked(now)
	if el, ok := t.byName[name]; ok {
		e := el.Value.(*nameEntry)
		e.used = now
		t.lru.MoveToFront(el)
		return e.index
	}
	for t.lru.Len() >= t.max {
		t.removeLocked(t.lru.Back())
	}
	for {
		i := t.next
		t.next++
		if t.next >= poolSize {
			t.next = 1
		}
		if _, taken := t.byIndex[i]; !taken {
			el := t.lru.PushFront(&nameEntry{name: name, index: i, used: now})
			t.byName[name], t.byIndex[i] = el, el
			return i
		}
	}
}

// name returns the name that pool index i stands for, if the table still holds it, and
// counts the lookup as a use.
func (t *nameTable) name(i uint32) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.expireLocked(now)
	el, ok := t.byIndex[i]
	if !ok {
		return "", false
	}
	e := el.Value.(*nameEntry)
	e.used = now
	t.lru.MoveToFront(el)
	return e.name, true
}

// len returns how many names the table holds.
func (t *nameTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}

func (t *nameTable) expireLocked(now time.Time) {
	for el := t.lru.Back(); el != nil && now.Sub(el.Value.(*nameEntry).used) >= t.idle; el = t.lru.Back() {
		t.removeLocked(el)
	}
}

func (t *nameTable) removeLocked(el *list.Element) {
	e := el.Value.(*nameEntry)
	delete(t.byName, e.name)
	delete(t.byIndex, e.index)
	t.lru.Remove(el)
}

// localNames remembers which name each real address in an answer for a local name came
// from, so that a connection to that address is dialed by the name: name-based PROXY_LOCAL
// rules then route it as they would the name. Bounded and expiring like nameTable.
type localNames struct {
	max  int
	idle time.Duration
	now  func() time.Time

	mu     sync.Mutex
	byAddr map[netip.Addr]*list.Element // of *localEntry
	lru    list.List
}

type localEntry struct {
	addr netip.Addr
	name string
	used time.Time
}

func newLocalNames(max int, idle time.Duration, now func() time.Time) *localNames {
	return &localNames{max: max, idle: idle, now: now, byAddr: make(map[netip.Addr]*list.Element)}
}

// add records that a is an address of name.
func (l *localNames) add(a netip.Addr, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if el, ok := l.byAddr[a]; ok {
		e := el.Value.(*localEntry)
		e.name, e.used = name, now
		l.lru.MoveToFront(el)
		return
	}
	for l.lru.Len() >= l.max {
		l.removeLocked(l.lru.Back())
	}
	l.byAddr[a] = l.lru.PushFront(&localEntry{addr: a, name: name, used: now})
}

// name returns the local name a was given for, if it is still remembered.
func (l *localNames) name(a netip.Addr) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for el := l.lru.Back(); el != nil && now.Sub(el.Value.(*localEntry).used) >= l.idle; el = l.lru.Back() {
		l.removeLocked(el)
	}
	el, ok := l.byAddr[a]
	if !ok {
		return "", false
	}
	return el.Value.(*localEntry).name, true
}

func (l *localNames) removeLocked(el *list.Element) {
	delete(l.byAddr, el.Value.(*localEntry).addr)
	l.lru.Remove(el)
}

// reachedTargets remembers the targets (host:port) that took a connection lately. A new
// connection to one of them is accepted before its dial, to send the program's first bytes
// along with it; any other waits for its dial, so that an unreachable target refuses it.
type reachedTargets struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
}

func newReachedTargets(max int, ttl time.Duration, now func() time.Time) *reachedTargets {
	return &reachedTargets{max: max, ttl: ttl, now: now, last: make(map[string]time.Time)}
}

// recent reports whether target took a connection within the last ttl.
func (r *reachedTargets) recent(target string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.last[target]
	return ok && r.now().Sub(t) < r.ttl
}

// mark records that target took a connection now.
func (r *reachedTargets) mark(target string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if _, ok := r.last[target]; !ok && len(r.last) >= r.max {
		for k, t := range r.last {
			if now.Sub(t) >= r.ttl {
				delete(r.last, k)
			}
		}
		if len(r.last) >= r.max {
			clear(r.last)
		}
	}
	r.last[target] = now
}

// forget records that a dial to target failed.
func (r *reachedTargets) forget(target string) {
	r.mu.Lock()
	delete(r.last, target)
	r.mu.Unlock()
}
