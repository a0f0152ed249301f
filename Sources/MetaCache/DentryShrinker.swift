// The dentry cache's shrinker, and the eviction primitives it uses.
//
// lru:    per shard, from the LRU tail: pinned dentries (directories whose children are cached)
//         and dirty ones are rotated to the head; a referenced one loses its bit and is rotated
//         (second chance); the rest are evicted. Leaves go before the directories they pin by
//         construction: a directory dentry is pinned until its last cached child goes.
// page:   PageSelection over the dentry slabs (both kinds when segregated).
// hybrid: lru, except that a referenced dentry that is the last object on its slab goes at once,
//         and an eviction that leaves its slab at most a quarter full takes the rest of the page
//         with it (after the shard lock is dropped: the others belong to other shards).
//
// Evicting a dentry releases its pins on its inode and its parent's dentry; those become
// freeable for the inode shrinker and a later dentry scan.

final class DentryShrinker: CacheShrinker<DentryCache>, @unchecked Sendable {
    init(cache: DentryCache) {
        super.init(name: "dentry", cache: cache)
    }

    override var relocatedCount: UInt64 { cache.relocated.load(ordering: .relaxed) }
}

extension DentryCache: ShrinkableCache {
    var shardCount: Int { shards.count }

    /// One batch of an LRU scan of shard `i` (try-lock). Returns false if the shard was busy.
    /// Hybrid: slabs left nearly empty by an eviction go into `pagesToEmpty`.
    func scanLRU(shard i: Int, limit: Int, _ sc: ScanControl, _ r: inout ScanResult, pagesToEmpty: inout [Int]) -> Bool {
        var victims: [Detached] = []
        let ran = shards.withLockIfAvailable(i) { s -> Bool in
            shards.writeBegin(i)
            defer { shards.writeEnd(i) }
            var cur = s.lru.tail
            var visited = 0
            let budget = min(limit, s.lru.count)
            while cur != nilHandle && visited < budget {
                let before = s.lru.prev(of: cur, slab, .lru)
                visited += 1
                r.scanned += 1
                let d = ref(cur)
                let st = d.header.state
                if st >> 8 > 0 {
                    r.skippedPinned += 1
                    s.lru.moveToFront(cur, slab, .lru)
                } else if st & ObjectFlag.referenced != 0
                            && !(sc.policy == .hybrid && slab.racyLive(slab: slab.slabIndex(cur)) == 1) {
                    slab.clearReferenced(cur)
                    r.skippedReferenced += 1
                    s.lru.moveToFront(cur, slab, .lru)
                } else if st & ObjectFlag.dirty != 0 {
                    // Skipped and rotated, or collected for the writeback batch (then freed).
                    r.dirty(cur, sc)
                    s.lru.moveToFront(cur, slab, .lru)
                } else {
                    let page = slab.slabIndex(cur)
                    let x = detach(&s, cur, recordHash(cur), evicting: true)
                    r.freedObjects += 1
                    r.freedPages += x.pagesFreed
                    victims.append(x)
                    if sc.policy == .hybrid {
                        let left = slab.racyLive(slab: page)
                        if left > 0 && left * 4 <= slab.objectsPerSlab && !pagesToEmpty.contains(page) {
                            pagesToEmpty.append(page)
                        }
                    }
                }
                cur = before
            }
            return true
        }
        for x in victims { r.freedPages += finish(x) }
        if ran == nil { r.lockBusy += 1; return false }
        return true
    }

    /// Evicts the dentry `h` if it is still a hashed, unpinned and clean dentry (whatever its
    /// referenced bit: the page policy empties whole pages). Verified under its shard's lock
    /// (try-lock): the key is read racily from the record, hashed, and must lead back to `h`.
    func evict(handle h: UInt32, _ sc: ScanControl, _ r: inout ScanResult) {
        guard slab.isValidHandle(h) else { return }
        let d = ref(h)
        let parent = d.parent
        let n = d.nameLength
        guard n >= 1 && n <= 255 else { return }
        withUnsafeTemporaryAllocation(byteCount: 256, alignment: 8) { buffer in
            let name = buffer.baseAddress!
            if n <= DentryRef.inlineNameMax {
                name.copyMemory(from: d.p + DentryRef.nameOffset + 1, byteCount: n)
            } else {
                let nh = d.longNameHandle
                let c = names.cache(forLength: n)
                guard c.isValidHandle(nh) else { return }
                name.copyMemory(from: c.pointer(nh), byteCount: n)
            }
            let hv = hashName(parent, name, n)
            let si = shardIndex(hv)
            enum Outcome { case gone, pinned, dirty, evicted(Detached) }
            guard let outcome = shards.withLockIfAvailable(si, { s -> Outcome in
                guard find(&s, hv, parent, name, n) == h else { return .gone }
                let st = ref(h).header.state
                if st >> 8 > 0 { return .pinned }
                if st & ObjectFlag.dirty != 0 { return .dirty }
                shards.writeBegin(si)
                defer { shards.writeEnd(si) }
                return .evicted(detach(&s, h, hv, evicting: true))
            }) else {
                r.lockBusy += 1
                return
            }
            switch outcome {
            case .gone: break
            case .pinned: r.skippedPinned += 1
            case .dirty: r.dirty(h, sc)
            case .evicted(let x):
                r.freedObjects += 1
                r.freedPages += x.pagesFreed + finish(x)
            }
        }
    }

    /// Frees up to `count` clean negative dentries, oldest first (for `negative_max`). Walks at
    /// most 256 LRU entries per shard; busy shards are skipped. Returns dentries freed.
    @discardableResult
    func trimNegative(_ count: Int, start: Int) -> Int {
        var freed = 0
        var victims: [Detached] = []
        for k in 0..<shards.count where freed < count {
            let i = (start + k) & (shards.count - 1)
            victims.removeAll(keepingCapacity: true)
            _ = shards.withLockIfAvailable(i) { s in
                guard s.negative > 0 else { return }
                shards.writeBegin(i)
                defer { shards.writeEnd(i) }
                var cur = s.lru.tail
                var visited = 0
                // Each shard gives its share, so the oldest go everywhere rather than one shard
                // emptying first.
                let share = max(1, (count - freed + shards.count - 1 - k) / (shards.count - k))
                var taken = 0
                while cur != nilHandle && visited < 256 && taken < share {
                    let before = s.lru.prev(of: cur, slab, .lru)
                    visited += 1
                    let d = ref(cur)
                    if d.ino == 0 && d.header.state & (ObjectFlag.dirty | 0xFFFF_FF00) == 0 {
                        victims.append(detach(&s, cur, recordHash(cur), evicting: true))
                        taken += 1
                    }
                    cur = before
                }
            }
            for x in victims { finish(x) }
            freed += victims.count
        }
        return freed
    }
}
