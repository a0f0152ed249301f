// The shrinker shared by the caches whose objects sit on per-shard LRU lists (dentries, inodes):
// count and the three policies are the same; what differs is how one cache scans a shard's LRU
// and evicts one object, which each cache provides through `ShrinkableCache`.

/// A cache the generic shrinker can scan.
protocol ShrinkableCache: AnyObject {
    var slab: SlabCache { get }
    var shardCount: Int { get }
    /// One batch of an LRU scan of shard `i` (try-lock). Returns false if the shard was busy.
    /// Hybrid: slabs left nearly empty by an eviction go into `pagesToEmpty`.
    func scanLRU(shard i: Int, limit: Int, _ sc: ScanControl, _ r: inout ScanResult, pagesToEmpty: inout [Int]) -> Bool
    /// Evicts the object `h` if it may go now, counting why not otherwise.
    func evict(handle h: UInt32, _ sc: ScanControl, _ r: inout ScanResult)
}

class CacheShrinker<Cache: ShrinkableCache>: Shrinker, @unchecked Sendable {
    let cache: Cache

    init(name: String, cache: Cache) {
        self.cache = cache
        super.init(name: name, slab: cache.slab)
    }

    override func count(_ sc: ScanControl) -> ShrinkerCount {
        let live = slab.figures.liveObjects
        let pinned = slab.total(.pinned)
        let dirty = sc.collectsDirty ? 0 : slab.total(.dirty)
        return ShrinkerCount(objects: max(0, live - pinned - dirty),
                             pages: PageSelection.freeablePages(slab, allowDirty: sc.collectsDirty))
    }

    override func scanObjects(_ sc: ScanControl) -> ScanResult {
        switch sc.policy {
        case .page:
            return PageSelection.shrink(slab, sc) { h, r in cache.evict(handle: h, sc, &r) }
        case .lru, .hybrid:
            var r = ScanResult()
            var pages: [Int] = []
            roundRobin(shards: cache.shardCount, total: sc.nrToScan) { i, n in
                let before = r.scanned
                let ran = cache.scanLRU(shard: i, limit: n, sc, &r, pagesToEmpty: &pages)
                for p in pages where slab.claim(slab: p) {
                    PageSelection.evictSlab(slab, p, &r) { h, rr in cache.evict(handle: h, sc, &rr) }
                    slab.unclaim(slab: p)
                }
                pages.removeAll(keepingCapacity: true)
                let done = sc.pagesWanted > 0 && r.freedPages >= sc.pagesWanted
                return (ran ? r.scanned - before : 0, done)
            }
            return r
        }
    }

    override func evictHandles(_ handles: [UInt32], _ sc: ScanControl) -> ScanResult {
        var r = ScanResult()
        for h in handles { cache.evict(handle: h, sc, &r) }
        return r
    }
}
