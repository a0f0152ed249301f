import MetaCache

/// The file system's side of reclaim (MetaCache's Reclaimer does the work).
///
/// Locking contract: the writeback hook is `sync()`, which takes the namespace lock exclusively.
/// MetaCache calls it only from its background reclaimer thread and from `shrink` requests
/// (the `shrink` control command and the shrinkers' `scan` files, which run with no file-system
/// lock held); direct reclaim on a FUSE worker that is inserting under the shared (or
/// exclusive) namespace lock frees clean objects only and never calls it. Evicting objects
/// under the file system is safe: every path copies attributes and mappings out of the caches
/// and fills them again on a miss, dirty objects are never evicted before a commit has marked
/// them clean, and open files pin their inodes.
extension FileSystem {
    func startReclaim() {
        cache.reclaimer.setWriteback({ [weak self] in try self?.sync() },
                                     kick: { [weak self] in self?.flusher?.kick() })
        cache.reclaimer.start()
    }

    func stopReclaim() {
        cache.reclaimer.stop()
        cache.reclaimer.setWriteback(nil)
    }

    /// `shrink N|N%|SIZE` from control: reclaim now (call with no namespace lock held).
    /// N% is a share of the slab pages held now; a size is rounded up to whole pages.
    public func shrink(_ amount: ControlAmount) -> ReclaimReport {
        let pageSize = cache.configuration.pageSize
        let goal: ReclaimGoal
        switch amount {
        case .objects(let n): goal = .objects(Int(min(n, UInt64(Int.max))))
        case .percent(let p):
            let pages = Double(cache.accountedSlabBytes / pageSize) * p / 100
            goal = .pages(max(1, Int(pages.rounded(.up))))
        case .bytes(let b): goal = .pages(Int((min(b, UInt64(Int.max / 2)) + UInt64(pageSize) - 1) / UInt64(pageSize)))
        }
        return cache.reclaimer.shrink(goal)
    }
}
