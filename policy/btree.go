package policy

import "slices"

// A B+ tree of entries ordered by (key, seq), used by the sorted policies.
// Leaves hold the entries and are linked left to right, so the first n
// entries are read without a stack. Internal nodes hold child pointers and
// separators. Internal nodes other than the root are kept at least half
// full, and a deletion that leaves a leaf under half full merges or
// rebalances it with a neighbour. An insertion at the far right end, or at
// the end of a run of equal keys (new sequence numbers always go there),
// into a full leaf splits off a one-entry leaf instead of halving; one that
// ends a run in the middle of a full leaf splits it there (within the
// middle half). So trees filled in order or at the ends of key runs stay
// nearly full.
//
// A tree made with a SlotSpace (the sorted selectors' trees) keeps, for
// each entry's slot, the leaf that holds the entry (the leaf's number in
// t.leaves), and rewrites it whenever an entry moves to another leaf: on
// insertion, splits, merges and redistribution. A member then leaves
// (deleteSlot) without a descent and without knowing its key: its leaf is
// scanned for the slot, and only a leaf left under half full has the path
// to it searched, to merge or rebalance it.

const (
	// nodeCap is the number of entries per leaf and children per internal
	// node: 61 makes a node 1024 bytes, a malloc size class.
	nodeCap = 61
	nodeMin = nodeCap / 2
)

type entry struct {
	key  uint64
	seq  uint32
	slot int32
}

func (a entry) less(b entry) bool {
	return a.key < b.key || (a.key == b.key && a.seq < b.seq)
}

type node struct {
	n    int
	leaf bool
	id   int32 // leaf: its number in btree.leaves (>= 1); internal: 0
	// Leaf: the entries. Internal: items[i] (i >= 1) is a separator, at most
	// every entry under kids[i] and greater than every entry under kids[i-1].
	items [nodeCap]entry
	kids  []*node // internal only, len nodeCap
	next  *node   // leaf only: right neighbour
}

type btree struct {
	root *node
	size int
	// Nodes freed by merges, reused by splits so that a steady state of
	// selections (delete at the left, insert at the right) does not allocate.
	freeLeaves, freeInternals []*node
	// ver counts the changes of the tree's shape (splits, merges,
	// rebalancing, a new root): while it stays, every leaf keeps its place
	// and its bounds.
	ver uint64
	// hint is the leaf the last insertion without a split went to, with
	// the bounds of the entries that belong in it, valid while ver is
	// hintVer. Insertions cluster (a selected least-used member goes to
	// the end of its run of equal keys, each after the previous one), so
	// the next one usually belongs in the same leaf and skips the descent.
	hint           *node
	hintLo, hintHi entry
	hintHasLo      bool
	hintHasHi      bool
	hintVer        uint64 // (insertHinted sets and uses the hint)
	// head is the leftmost leaf. It never leaves the tree: a split keeps
	// the left half, a merge the left node, a root collapse the left spine.
	head *node
	// tail is the rightmost leaf (a split of it makes its new right half
	// the tail, a merge of it into its left neighbour that neighbour).
	tail *node
	// firstBound's answer, valid while ver is boundVer (a shape change can
	// move the separator above the leftmost leaf).
	bound    *entry
	boundVer uint64
	// sp, when not nil, is where the tree records each entry's leaf: the
	// slot's narrowSlot (narrow) or sortedSlot holds the leaf's id.
	sp     *SlotSpace
	narrow bool
	// leaves holds every leaf by id (leaves[0] is unused: id 0 is "none");
	// freeIDs are the ids of the leaves that left the tree for good.
	leaves  []*node
	freeIDs []int32
}

// newBtree returns an empty tree that records the leaf of each entry's
// slot in sp (see btree), in sp.narrow when narrow is set and in sp.slots
// otherwise.
func newBtree(sp *SlotSpace, narrow bool) btree {
	return btree{sp: sp, narrow: narrow}
}

// place records that entry e is held by leaf l.
func (t *btree) place(e entry, l *node) {
	if t.sp == nil {
		return
	}
	if t.narrow {
		t.sp.narrow[e.slot].leaf = uint32(l.id)
		return
	}
	t.sp.slots[e.slot].leaf = uint32(l.id)
}

// placeAll records that leaf l holds the entries es.
func (t *btree) placeAll(es []entry, l *node) {
	if t.sp == nil {
		return
	}
	id := uint32(l.id)
	if t.narrow {
		ns := t.sp.narrow
		for _, e := range es {
			ns[e.slot].leaf = id
		}
		return
	}
	ss := t.sp.slots
	for _, e := range es {
		ss[e.slot].leaf = id
	}
}

const maxFree = 4

func (t *btree) newLeaf() *node {
	if k := len(t.freeLeaves); k > 0 {
		nd := t.freeLeaves[k-1]
		t.freeLeaves = t.freeLeaves[:k-1]
		return nd // it keeps its id
	}
	nd := &node{leaf: true}
	if k := len(t.freeIDs); k > 0 {
		nd.id = t.freeIDs[k-1]
		t.freeIDs = t.freeIDs[:k-1]
		t.leaves[nd.id] = nd
		return nd
	}
	if len(t.leaves) == 0 {
		t.leaves = make([]*node, 1, 16) // id 0: none
	}
	nd.id = int32(len(t.leaves))
	t.leaves = append(t.leaves, nd)
	return nd
}

func (t *btree) newInternal() *node {
	if k := len(t.freeInternals); k > 0 {
		nd := t.freeInternals[k-1]
		t.freeInternals = t.freeInternals[:k-1]
		return nd
	}
	return &node{kids: make([]*node, nodeCap)}
}

// release keeps a node that left the tree for reuse.
func (t *btree) release(nd *node) {
	nd.n = 0
	nd.next = nil
	if nd.leaf {
		if len(t.freeLeaves) < maxFree {
			t.freeLeaves = append(t.freeLeaves, nd)
			return
		}
		t.leaves[nd.id] = nil
		if t.freeIDs == nil {
			t.freeIDs = make([]int32, 0, 16)
		}
		t.freeIDs = append(t.freeIDs, nd.id)
		return
	}
	clear(nd.kids)
	if len(t.freeInternals) < maxFree {
		t.freeInternals = append(t.freeInternals, nd)
	}
}

// lowerBound returns the index of the first item in s not less than e.
func lowerBound(s []entry, e entry) int {
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].less(e) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// childIndex returns the child of internal node nd whose range holds e.
func childIndex(nd *node, e entry) int {
	// largest i >= 1 with items[i] <= e, or 0
	lo, hi := 1, nd.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if e.less(nd.items[m]) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo - 1
}

// upperKey returns the index of the first item in s whose key exceeds k.
// It is where an insertion puts an entry of key k: the insertions' entries
// have a sequence number above every entry's in the tree (see insert), so
// they go after every entry of equal key, and comparing keys is enough.
// The halving step is a conditional move, not a branch: the comparisons
// of an insertion's search are unpredictable.
func upperKey(s []entry, k uint64) int {
	base, n := 0, len(s)
	for n > 1 {
		half := n >> 1
		base += half & -b2i(s[base+half].key <= k)
		n -= half
	}
	if n == 1 {
		base += b2i(s[base].key <= k)
	}
	return base
}

// countKey is upperKey by counting the keys not above k, eight at a time
// (the loads do not depend on one another), up to the first block that
// has a key above k: s is sorted, so every key after it is above k too.
func countKey(s []entry, k uint64) int {
	c, i := 0, 0
	for ; i+8 <= len(s); i += 8 {
		q := s[i : i+8 : i+8]
		m := b2i(q[0].key <= k) + b2i(q[1].key <= k) + b2i(q[2].key <= k) + b2i(q[3].key <= k) +
			b2i(q[4].key <= k) + b2i(q[5].key <= k) + b2i(q[6].key <= k) + b2i(q[7].key <= k)
		c += m
		if m < 8 {
			return c
		}
	}
	for ; i < len(s); i++ {
		c += b2i(s[i].key <= k)
	}
	return c
}

// b2i is 1 for true and 0 for false, without a branch (SETcc).
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// shiftIn inserts e into leaf l, which has room, after every entry of key
// up to e.key (see upperKey). It looks for the place from the end, moving
// each entry it passes up by one: the search and the shift are one pass
// over the entries that move, which a binary search and a copy would read
// twice, in dependent steps.
func shiftIn(l *node, e entry) {
	j := l.n
	for j > 0 && l.items[j-1].key > e.key {
		l.items[j] = l.items[j-1]
		j--
	}
	l.items[j] = e
	l.n++
}

func (t *btree) first() *node { return t.head }

// firstBound returns the leftmost leaf and the separator above it: every
// entry of the leaf is less than *bound, and an entry less than it belongs
// in the leaf. bound is nil when the leaf is the root.
func (t *btree) firstBound() (l *node, bound *entry) {
	if t.boundVer == t.ver {
		return t.head, t.bound
	}
	nd := t.root
	if nd == nil {
		return nil, nil
	}
	for !nd.leaf {
		bound = &nd.items[1]
		nd = nd.kids[0]
	}
	t.bound, t.boundVer = bound, t.ver
	return nd, bound
}

// min returns the smallest entry; ok is false when the tree is empty.
func (t *btree) min() (entry, bool) {
	l := t.first()
	if l == nil || l.n == 0 {
		return entry{}, false
	}
	return l.items[0], true
}

// insert adds e, whose seq must exceed that of every entry in the tree
// (the selectors hand sequence numbers out in increasing order, renumbering
// in order when they run out): it goes after every entry of its key.
func (t *btree) insert(e entry) {
	if t.root == nil {
		t.root = t.newLeaf()
		t.head, t.tail = t.root, t.root
		t.ver++
	}
	// An entry after every other one (round robin puts a new member
	// there) goes into the rightmost leaf: when it has room, appending
	// changes no separator and needs no search.
	if l := t.tail; l.n > 0 && l.n < nodeCap && l.items[l.n-1].less(e) {
		l.items[l.n] = e
		l.n++
		t.size++
		t.place(e, l)
		return
	}
	t.insertAt(e, false)
}

// insertHinted is insert for an entry that likely belongs where the
// previous insertHinted put one (a selected member going behind the
// previously selected one): it tries the hint first, and it leaves the
// hint at the leaf it used.
func (t *btree) insertHinted(e entry) {
	if t.root == nil {
		t.insert(e)
		return
	}
	if l := t.hint; l != nil && t.hintVer == t.ver && l.n < nodeCap &&
		(!t.hintHasLo || !e.less(t.hintLo)) && (!t.hintHasHi || e.less(t.hintHi)) {
		shiftIn(l, e)
		t.size++
		t.place(e, l)
		return
	}
	t.hintHasLo, t.hintHasHi = false, false
	t.insertAt(e, true)
}

// insertAt inserts e with a descent from the root; track: make the leaf
// the hint (when nothing splits).
func (t *btree) insertAt(e entry, track bool) {
	right, sep := t.insertRec(t.root, e, true, track)
	if right != nil {
		r := t.newInternal()
		r.kids[0], r.kids[1] = t.root, right
		r.items[1] = sep
		r.n = 2
		t.root = r
	}
	t.size++
}

// insertRec inserts e under nd. Along the way it narrows t.hintLo and
// t.hintHi to the bounds of the entries that belong under nd, and makes
// the leaf the hint when the insertion splits nothing.
func (t *btree) insertRec(nd *node, e entry, rightmost, track bool) (*node, entry) {
	if nd.leaf {
		if nd.n < nodeCap {
			shiftIn(nd, e)
			t.place(e, nd)
			if track {
				t.hint, t.hintVer = nd, t.ver
			}
			return nil, entry{}
		}
		pos := upperKey(nd.items[:nd.n], e.key)
		t.ver++
		r := t.newLeaf()
		// runEnd: e extends a run of equal keys (sequence numbers only
		// grow, so later members of the run will follow e).
		runEnd := pos > 0 && nd.items[pos-1].key == e.key
		if pos == nd.n && (rightmost || runEnd) {
			r.items[0] = e
			r.n = 1
			t.place(e, r)
		} else {
			mid := nodeCap / 2
			if runEnd && nd.items[pos].key != e.key {
				// Split where the run ends, so that the run's future
				// members fill the left leaf up while the right one keeps
				// what follows. Bounded so that no leaf starts below a
				// quarter full.
				mid = min(max(pos, nodeCap/4), nodeCap-nodeCap/4)
			}
			r.n = copy(r.items[:], nd.items[mid:nd.n])
			nd.n = mid
			if pos <= mid {
				copy(nd.items[pos+1:nd.n+1], nd.items[pos:nd.n])
				nd.items[pos] = e
				nd.n++
				t.place(e, nd)
			} else {
				p := pos - mid
				copy(r.items[p+1:r.n+1], r.items[p:r.n])
				r.items[p] = e
				r.n++
			}
			t.placeAll(r.items[:r.n], r) // e too, when it went there
		}
		r.next = nd.next
		nd.next = r
		if nd == t.tail {
			t.tail = r
		}
		return r, r.items[0]
	}
	// The child: the number of separators (items[1:]) not above e.
	i := countKey(nd.items[1:nd.n], e.key)
	if track {
		if i > 0 {
			t.hintLo, t.hintHasLo = nd.items[i], true
		}
		if i+1 < nd.n {
			t.hintHi, t.hintHasHi = nd.items[i+1], true
		}
	}
	kid, sep := t.insertRec(nd.kids[i], e, rightmost && i == nd.n-1, track)
	if kid == nil {
		return nil, entry{}
	}
	pos := i + 1 // new child position
	if nd.n < nodeCap {
		copy(nd.kids[pos+1:nd.n+1], nd.kids[pos:nd.n])
		copy(nd.items[pos+1:nd.n+1], nd.items[pos:nd.n])
		nd.kids[pos], nd.items[pos] = kid, sep
		nd.n++
		return nil, entry{}
	}
	// Internal nodes are few (one per ~nodeCap leaves), so they always
	// split in halves; only leaves take the append shortcut.
	r := t.newInternal()
	// Split the nodeCap+1 children: left keeps mid, right gets the rest.
	var kids [nodeCap + 1]*node
	var seps [nodeCap + 1]entry
	copy(kids[:pos], nd.kids[:pos])
	copy(seps[:pos], nd.items[:pos])
	kids[pos], seps[pos] = kid, sep
	copy(kids[pos+1:], nd.kids[pos:nd.n])
	copy(seps[pos+1:], nd.items[pos:nd.n])
	mid := (nodeCap + 1) / 2
	copy(nd.kids, kids[:mid])
	copy(nd.items[:mid], seps[:mid])
	clear(nd.kids[mid:])
	nd.n = mid
	r.n = copy(r.kids, kids[mid:])
	copy(r.items[:r.n], seps[mid:])
	return r, seps[mid]
}

// delete removes e and reports whether it was present.
func (t *btree) delete(e entry) bool {
	if t.root == nil {
		return false
	}
	if r := t.root; !r.leaf && r.kids[0].leaf {
		// A root over leaves (a pool of up to some 3,700 members): the
		// same as deleteRec, without the recursion.
		i := childIndex(r, e)
		l := r.kids[i]
		pos := lowerBound(l.items[:l.n], e)
		if pos == l.n || l.items[pos] != e {
			return false
		}
		copy(l.items[pos:l.n-1], l.items[pos+1:l.n])
		l.n--
		if l.n < nodeMin {
			t.rebalance(r, i)
		}
	} else if !t.deleteRec(t.root, e) {
		return false
	}
	t.size--
	t.collapseRoot()
	return true
}

// collapseRoot replaces an internal root left with one child by that child.
func (t *btree) collapseRoot() {
	if !t.root.leaf && t.root.n == 1 {
		old := t.root
		t.root = old.kids[0]
		t.release(old)
		t.ver++
	}
}

// deleteSlot removes the entry of slot, which leaf id holds (see place),
// and returns it. The leaf is scanned for the slot from the end, each entry
// passed moving down by one, so that the search and the shift are one pass
// over the entries after it. A leaf left under half full is merged or
// rebalanced (fixLeaf), the only case that searches the tree. A leaf id
// that does not name a leaf holding slot (a stale one, or the slot shared
// against the Selector contract) changes nothing and gives false.
func (t *btree) deleteSlot(slot int32, id uint32) (entry, bool) {
	if int(id) >= len(t.leaves) || t.leaves[id] == nil || t.leaves[id].n == 0 {
		return entry{}, false
	}
	l := t.leaves[id]
	j := l.n - 1
	e := l.items[j]
	for e.slot != slot {
		if j == 0 {
			// Not in this leaf: undo the shift (items[n-1] was not
			// written; the others each moved down by one).
			copy(l.items[1:l.n-1], l.items[:max(l.n-2, 0)])
			l.items[0] = e
			return entry{}, false
		}
		j--
		e, l.items[j] = l.items[j], e
	}
	l.n--
	t.size--
	if l.n < nodeMin && l != t.root {
		t.fixLeaf(t.root, e)
		t.collapseRoot()
	}
	return e, true
}

// fixLeaf rebalances the nodes on the path from nd to the leaf that held
// e, bottom up, as deleteRec does after its deletion: the separators have
// not changed, so e still leads to that leaf.
func (t *btree) fixLeaf(nd *node, e entry) {
	if nd.leaf {
		return
	}
	i := childIndex(nd, e)
	t.fixLeaf(nd.kids[i], e)
	if nd.kids[i].n < nodeMin {
		t.rebalance(nd, i)
	}
}

// deleteFirst removes the smallest entry from l, the leftmost leaf, which
// must hold one. When l keeps at least half its entries (or is the root) it
// only shifts them: its first entry is never a separator, so no other node
// changes and no descent is needed.
func (t *btree) deleteFirst(l *node) {
	if l != t.root && l.n <= nodeMin {
		t.delete(l.items[0])
		return
	}
	copy(l.items[:l.n-1], l.items[1:l.n])
	l.n--
	t.size--
}

func (t *btree) deleteRec(nd *node, e entry) bool {
	if nd.leaf {
		pos := lowerBound(nd.items[:nd.n], e)
		if pos == nd.n || nd.items[pos] != e {
			return false
		}
		copy(nd.items[pos:nd.n-1], nd.items[pos+1:nd.n])
		nd.n--
		return true
	}
	i := childIndex(nd, e)
	if !t.deleteRec(nd.kids[i], e) {
		return false
	}
	if nd.kids[i].n < nodeMin {
		t.rebalance(nd, i)
	}
	return true
}

// rebalance fixes the underfull child i of nd by merging it with a neighbour
// or by sharing the neighbour's items evenly.
func (t *btree) rebalance(nd *node, i int) {
	if nd.n < 2 {
		return
	}
	t.ver++
	j := i
	if j == nd.n-1 {
		j--
	}
	l, r := nd.kids[j], nd.kids[j+1]
	if l.leaf {
		total := l.n + r.n
		if total <= nodeCap {
			copy(l.items[l.n:], r.items[:r.n])
			t.placeAll(r.items[:r.n], l)
			l.n = total
			l.next = r.next
			if r == t.tail {
				t.tail = l
			}
			removeKid(nd, j+1)
			t.release(r)
			return
		}
		var buf [2 * nodeCap]entry
		copy(buf[:], l.items[:l.n])
		copy(buf[l.n:], r.items[:r.n])
		k := total / 2
		ln := l.n
		l.n = copy(l.items[:], buf[:k])
		r.n = copy(r.items[:], buf[k:total])
		if ln > k { // l's last ln-k went to r
			t.placeAll(r.items[:ln-k], r)
		} else { // r's first k-ln went to l
			t.placeAll(l.items[ln:k], l)
		}
		nd.items[j+1] = r.items[0]
		return
	}
	total := l.n + r.n
	var kids [2 * nodeCap]*node
	var seps [2 * nodeCap]entry
	copy(kids[:], l.kids[:l.n])
	copy(seps[:], l.items[:l.n])
	copy(kids[l.n:], r.kids[:r.n])
	copy(seps[l.n:], r.items[:r.n])
	seps[l.n] = nd.items[j+1]
	if total <= nodeCap {
		copy(l.kids, kids[:total])
		copy(l.items[:total], seps[:total])
		l.n = total
		removeKid(nd, j+1)
		t.release(r)
		return
	}
	k := total / 2
	l.n = copy(l.kids, kids[:k])
	copy(l.items[:k], seps[:k])
	clear(l.kids[k:])
	r.n = copy(r.kids, kids[k:total])
	copy(r.items[:r.n], seps[k:total])
	clear(r.kids[r.n:])
	nd.items[j+1] = seps[k]
}

func removeKid(nd *node, i int) {
	copy(nd.kids[i:nd.n-1], nd.kids[i+1:nd.n])
	copy(nd.items[i:nd.n-1], nd.items[i+1:nd.n])
	nd.n--
	nd.kids[nd.n] = nil
}

// appendFirst appends the slots of the first n entries to dst.
func (t *btree) appendFirst(n int, dst []int32) []int32 {
	n = min(n, t.size)
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	out := dst[start:]
	for l := t.first(); len(out) > 0; l = l.next {
		m := min(l.n, len(out))
		for i, e := range l.items[:m] {
			out[i] = e.slot
		}
		out = out[m:]
	}
	return dst
}

// all returns every entry in order.
func (t *btree) all() []entry {
	out := make([]entry, 0, t.size)
	for l := t.first(); l != nil; l = l.next {
		out = append(out, l.items[:l.n]...)
	}
	return out
}
