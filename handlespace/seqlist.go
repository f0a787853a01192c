package handlespace

// seqList keeps indexes in increasing sequence order with O(1) amortised
// add and remove: removal leaves a tombstone (idx -1) and the list is
// compacted when tombstones outnumber live entries. Positions change only on
// compaction, which reports every move through the callback.
//
// S is uint64 for the pool order and uint32 for a pool's members, whose
// entries are then 8 bytes.
type seqList[S uint32 | uint64] struct {
	ents []seqEnt[S]
	dead int
}

type seqEnt[S uint32 | uint64] struct {
	seq S
	idx int32
}

func (l *seqList[S]) len() int { return len(l.ents) - l.dead }

// add appends (seq, idx); seq must exceed every seq already added.
func (l *seqList[S]) add(seq S, idx int32, moved func(idx, pos int32)) int32 {
	if l.dead > 16 && l.dead >= len(l.ents)/2 && len(l.ents) == cap(l.ents) {
		l.compact(moved)
	}
	l.ents = append(l.ents, seqEnt[S]{seq: seq, idx: idx})
	return int32(len(l.ents) - 1)
}

func (l *seqList[S]) remove(pos int32, moved func(idx, pos int32)) {
	l.ents[pos].idx = -1
	l.dead++
	if l.dead == len(l.ents) {
		l.ents, l.dead = l.ents[:0], 0
		return
	}
	if l.dead > 16 && l.dead > len(l.ents)/2 {
		l.compact(moved)
	}
}

func (l *seqList[S]) compact(moved func(idx, pos int32)) {
	j := 0
	for _, e := range l.ents {
		if e.idx < 0 {
			continue
		}
		if l.ents[j] != e {
			l.ents[j] = e
			moved(e.idx, int32(j))
		}
		j++
	}
	clear(l.ents[j:])
	l.ents, l.dead = l.ents[:j], 0
	if cap(l.ents) > 64 && cap(l.ents) > 4*j {
		l.ents = append([]seqEnt[S](nil), l.ents...)
	}
}

// renumber compacts and gives the live entries the sequences 1, 2, 3...
func (l *seqList[S]) renumber(moved func(idx, pos int32)) {
	l.compact(moved)
	for i := range l.ents {
		l.ents[i].seq = S(i + 1)
	}
}

// search returns the position of the first entry (live or not) with
// seq >= s.
func (l *seqList[S]) search(s uint64) int {
	lo, hi := 0, len(l.ents)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if uint64(l.ents[m].seq) < s {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
