// The page-aware part of reclaim: which slabs are cheapest to empty, and emptying them.
//
// A slab is a candidate when no object on it is pinned (a pinned object can never go, so the
// page could never come free) and, unless this reclaim may write back, none is dirty. Among
// candidates the cost of emptying one is
//
//     8 * live + 2 * dirty + referenced
//
// so fewer objects to evict comes first (it is what emptying costs the working set), then fewer
// dirty ones (each needs writeback), then fewer referenced ones (each would have had a second
// chance). Candidates are read without the slab cache's mutex (per-slab counts are atomics);
// each object is then verified and evicted under its owner's shard lock (try-lock), and a slab
// is claimed while one shrinker empties it so that two shrinkers never work on the same page.

struct PageCandidate {
    var slab: Int
    var live: Int
    var dirty: Int
    var referenced: Int
    var cost: Int { 8 * live + 2 * dirty + referenced }
}

enum PageSelection {
    /// The `k` cheapest candidate slabs of `cache`, cheapest first.
    static func cheapest(_ cache: SlabCache, k: Int, allowDirty: Bool) -> [PageCandidate] {
        guard k > 0 else { return [] }
        if k > 64 {
            // A big batch (the background reclaimer's): collect and sort, O(n log n).
            var all: [PageCandidate] = []
            cache.racySnapshots { snap, _ in
                guard snap.pinned == 0, allowDirty || snap.dirty == 0,
                      cache.counter(slab: snap.index, .claimed) == 0 else { return }
                all.append(PageCandidate(slab: snap.index, live: snap.live, dirty: snap.dirty, referenced: snap.referenced))
            }
            all.sort { $0.cost < $1.cost }
            return Array(all.prefix(k))
        }
        var best: [PageCandidate] = []
        best.reserveCapacity(k + 1)
        var worst = Int.max
        cache.racySnapshots { snap, _ in
            guard snap.pinned == 0, allowDirty || snap.dirty == 0,
                  cache.counter(slab: snap.index, .claimed) == 0 else { return }
            let c = PageCandidate(slab: snap.index, live: snap.live, dirty: snap.dirty, referenced: snap.referenced)
            let cost = c.cost
            if best.count == k && cost >= worst { return }
            // Insert in order (k is small: the pages one reclaim step asks for).
            var i = best.count
            while i > 0 && best[i - 1].cost > cost { i -= 1 }
            best.insert(c, at: i)
            if best.count > k { best.removeLast() }
            worst = best.count == k ? best[k - 1].cost : Int.max
        }
        return best
    }

    /// Freeable pages of `cache`: resident slabs with live objects, none pinned (none dirty
    /// unless `allowDirty`). Empty resident slabs are counted too: releasing them frees a page.
    static func freeablePages(_ cache: SlabCache, allowDirty: Bool) -> Int {
        var n = 0
        cache.racySnapshots { snap, _ in
            if snap.pinned == 0 && (allowDirty || snap.dirty == 0) { n += 1 }
        }
        return n * cache.pagesPerSlab
    }

    /// The page policy for one cache: empties the cheapest slabs until `sc.pagesWanted` pages
    /// (or, without a page goal, `sc.nrToScan` objects) are freed. `evict` verifies and frees one
    /// object under its owner's lock, adding to the result. With writeback allowed and not yet
    /// done, a choice that holds dirty objects is reported (`dirtySeen`) instead of acted on:
    /// the reclaimer writes back in one batch and asks again.
    static func shrink(_ cache: SlabCache, _ sc: ScanControl, evict: (UInt32, inout ScanResult) -> Void) -> ScanResult {
        var r = ScanResult()
        let wanted = sc.pagesWanted > 0 ? (sc.pagesWanted + cache.pagesPerSlab - 1) / cache.pagesPerSlab
                                        : max(1, (sc.nrToScan + cache.objectsPerSlab - 1) / cache.objectsPerSlab)
        // A few spares: some chosen slabs turn out to be busy or to have changed.
        let chosen = cheapest(cache, k: wanted + max(2, wanted / 4), allowDirty: sc.collectsDirty)
        if sc.collectsDirty && !sc.wroteBack {
            let dirty = chosen.prefix(wanted).reduce(0) { $0 + $1.dirty }
            if dirty > 0 {
                r.dirtySeen = dirty
                return r
            }
        }
        for c in chosen {
            if sc.pagesWanted > 0 ? r.freedPages >= sc.pagesWanted : r.freedObjects >= sc.nrToScan { break }
            guard cache.claim(slab: c.slab) else { continue }
            defer { cache.unclaim(slab: c.slab) }
            evictSlab(cache, c.slab, &r, evict)
        }
        return r
    }

    /// Evicts every object on one slab ("the other objects on this object's page").
    static func evictSlab(_ cache: SlabCache, _ slab: Int, _ r: inout ScanResult, _ evict: (UInt32, inout ScanResult) -> Void) {
        for h in cache.liveHandles(slab: slab) {
            r.scanned += 1
            evict(h, &r)
        }
    }
}
