// The extent status cache's shrinker, after ext4's es shrinker (fs/ext4/extents_status.c).
//
// lru and hybrid: inodes that have extents sit on a per-shard list in the order they got their
// first extent; the shrinker walks them round-robin from where the last scan stopped (a rotor
// per shard, and a rotor over shards), and in each inode frees clean extents whose referenced
// bit is clear, clearing the bit of referenced ones (second chance). Dirty extents stay. An inode
// with I/O in flight (ExtentCache.beginIO) is passed over. hybrid: a referenced extent that is
// the last object on its slab goes at once.
// page: PageSelection over the extent slabs; each extent is verified through its owner inode.
// An inode left with no extents and no attributes (a stub) is freed too.

final class ExtentShrinker: Shrinker, @unchecked Sendable {
    let cache: InodeCache

    init(cache: InodeCache) {
        self.cache = cache
        super.init(name: "extent", slab: cache.extentSlab)
    }

    override func count(_ sc: ScanControl) -> ShrinkerCount {
        let live = slab.figures.liveObjects
        let dirty = sc.collectsDirty ? 0 : slab.total(.dirty)
        return ShrinkerCount(objects: max(0, live - dirty),
                             pages: PageSelection.freeablePages(slab, allowDirty: sc.collectsDirty))
    }

    override func scanObjects(_ sc: ScanControl) -> ScanResult {
        switch sc.policy {
        case .page:
            return PageSelection.shrink(slab, sc) { h, r in cache.evictExtent(handle: h, sc, &r) }
        case .lru, .hybrid:
            var r = ScanResult()
            roundRobin(shards: cache.shards.count, total: sc.nrToScan, batch: 128) { i, n in
                let before = r.scanned
                let ran = cache.scanExtents(shard: i, limit: n, sc, &r)
                return (ran ? r.scanned - before : 0, sc.pagesWanted > 0 && r.freedPages >= sc.pagesWanted)
            }
            return r
        }
    }

    override func evictHandles(_ handles: [UInt32], _ sc: ScanControl) -> ScanResult {
        var r = ScanResult()
        for h in handles { cache.evictExtent(handle: h, sc, &r) }
        return r
    }
}

extension InodeCache {
    /// One batch of the round-robin extent scan of shard `i` (try-lock): inodes from the shard's
    /// rotor on, up to `limit` extents looked at. Returns false if the shard was busy.
    func scanExtents(shard i: Int, limit: Int, _ sc: ScanControl, _ r: inout ScanResult) -> Bool {
        let ran = shards.withLockIfAvailable(i) { s -> Bool in
            guard s.withExtents.count > 0 else { return true }
            shards.writeBegin(i)
            defer { shards.writeEnd(i) }
            var h = s.extentRotor != nilHandle ? s.extentRotor : s.withExtents.head
            var inodesVisited = 0
            let inodesOnList = s.withExtents.count
            var looked = 0
            while h != nilHandle && looked < limit && inodesVisited < inodesOnList {
                inodesVisited += 1
                let next = s.withExtents.next(of: h, slab, InodeRef.extentList)
                let rec = ref(h)
                if ioBusy(rec.ino) {
                    r.skippedIO += rec.extentCount
                    looked += 1
                } else {
                    var t = tree(h)
                    let lastOnPage: ((UInt32) -> Bool)? = sc.policy == .hybrid
                        ? { e in self.extentSlab.racyLive(slab: self.extentSlab.slabIndex(e)) == 1 } : nil
                    let x = t.shrink(limit: limit - looked, lastOnPage: lastOnPage)
                    looked += max(1, x.scanned)
                    r.scanned += x.scanned
                    r.freedObjects += x.freed
                    r.skippedReferenced += x.referenced
                    for e in x.dirty { r.dirty(e, sc) }
                    r.freedPages += t.pagesFreed
                    store(t, h, &s)
                    r.freedPages += releaseStubIfEmpty(&s, h)
                }
                // Resume after this inode next time (wrapping to the head), as ext4's list does.
                h = next != nilHandle ? next : s.withExtents.head
                s.extentRotor = h
            }
            return true
        }
        if ran == nil { r.lockBusy += 1; return false }
        return true
    }

    /// Evicts extent record `e` if it is still in its owner's tree, clean and not under I/O.
    /// Verified under the owner's shard lock (try-lock): owner handle and inode number are read
    /// racily and must lead back to a tree holding `e`.
    func evictExtent(handle e: UInt32, _ sc: ScanControl, _ r: inout ScanResult) {
        guard extentSlab.isValidHandle(e) else { return }
        let owner = ExtentRef(extentSlab.pointer(e)).owner
        guard slab.isValidHandle(owner) else { return }
        let ino = ref(owner).ino
        let hv = hash(ino)
        let si = shardIndex(hv)
        enum Outcome { case gone, dirty, io, evicted(Int) }
        guard let outcome = shards.withLockIfAvailable(si, { s -> Outcome in
            guard find(&s, ino, hv) == owner else { return .gone }
            var t = tree(owner)
            guard t.count > 0, t.contains(e) else { return .gone }
            if ExtentRef(extentSlab.pointer(e)).isDirty { return .dirty }
            if ioBusy(ino) { return .io }
            shards.writeBegin(si)
            defer { shards.writeEnd(si) }
            t.removeExtent(e)
            store(t, owner, &s)
            return .evicted(t.pagesFreed + releaseStubIfEmpty(&s, owner))
        }) else {
            r.lockBusy += 1
            return
        }
        switch outcome {
        case .gone: break
        case .dirty: r.dirty(e, sc)
        case .io: r.skippedIO += 1
        case .evicted(let pages):
            r.freedObjects += 1
            r.freedPages += pages
        }
    }
}
