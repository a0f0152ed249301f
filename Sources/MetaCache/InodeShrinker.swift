// The inode cache's shrinker.
//
// An inode is freeable when nothing pins it (no dentry names it in the cache, no open file), it
// is clean, it has no dirty extents and no I/O is in flight on it; freeing it frees its cached
// extents too. lru: per shard from the LRU tail with a second chance for referenced inodes;
// page: PageSelection over the inode slabs; hybrid: lru, page-aware as for dentries. Most inodes
// are pinned by their dentries, so the inode shrinker frees what the dentry shrinker unpinned.

final class InodeShrinker: CacheShrinker<InodeCache>, @unchecked Sendable {
    init(cache: InodeCache) {
        super.init(name: "inode", cache: cache)
    }
}

extension InodeCache: ShrinkableCache {
    var shardCount: Int { shards.count }

    /// Why an inode cannot go now (nil: it can).
    private enum Keep { case pinned, dirty, io }

    private func keep(_ h: UInt32) -> Keep? {
        let r = ref(h)
        if r.header.pins > 0 { return .pinned }
        if r.header.has(ObjectFlag.dirty) || r.dirtyExtents > 0 { return .dirty }
        if ioBusy(r.ino) { return .io }
        return nil
    }

    /// One batch of an LRU scan of shard `i` (try-lock). Returns false if the shard was busy.
    func scanLRU(shard i: Int, limit: Int, _ sc: ScanControl, _ r: inout ScanResult, pagesToEmpty: inout [Int]) -> Bool {
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
                let referenced = slab.header(cur).has(ObjectFlag.referenced)
                    && !(sc.policy == .hybrid && slab.racyLive(slab: slab.slabIndex(cur)) == 1)
                switch keep(cur) {
                case .pinned:
                    r.skippedPinned += 1
                    s.lru.moveToFront(cur, slab, .lru)
                case .io:
                    r.skippedIO += 1
                    s.lru.moveToFront(cur, slab, .lru)
                case .dirty where !referenced:
                    r.dirty(cur, sc)
                    s.lru.moveToFront(cur, slab, .lru)
                case .dirty, nil:
                    if referenced {
                        slab.clearReferenced(cur)
                        r.skippedReferenced += 1
                        s.lru.moveToFront(cur, slab, .lru)
                    } else {
                        let page = slab.slabIndex(cur)
                        let (_, pages) = destroyCounting(&s, cur)
                        r.freedObjects += 1
                        r.freedPages += pages
                        if sc.policy == .hybrid {
                            let left = slab.racyLive(slab: page)
                            if left > 0 && left * 4 <= slab.objectsPerSlab && !pagesToEmpty.contains(page) {
                                pagesToEmpty.append(page)
                            }
                        }
                    }
                }
                cur = before
            }
            return true
        }
        if ran == nil { r.lockBusy += 1; return false }
        return true
    }

    /// Evicts inode record `h` if it is still hashed and freeable (referenced or not), verified
    /// under its shard lock (try-lock): its inode number, read racily, must lead back to `h`.
    func evict(handle h: UInt32, _ sc: ScanControl, _ r: inout ScanResult) {
        guard slab.isValidHandle(h) else { return }
        let ino = ref(h).ino
        let hv = hash(ino)
        let si = shardIndex(hv)
        enum Outcome { case gone, keep(Keep), evicted(Int) }
        guard let outcome = shards.withLockIfAvailable(si, { s -> Outcome in
            guard find(&s, ino, hv) == h else { return .gone }
            if let k = keep(h) { return .keep(k) }
            shards.writeBegin(si)
            defer { shards.writeEnd(si) }
            return .evicted(destroyCounting(&s, h).pages)
        }) else {
            r.lockBusy += 1
            return
        }
        switch outcome {
        case .gone: break
        case .keep(.pinned): r.skippedPinned += 1
        case .keep(.io): r.skippedIO += 1
        case .keep(.dirty): r.dirty(h, sc)
        case .evicted(let pages):
            r.freedObjects += 1
            r.freedPages += pages
        }
    }
}
