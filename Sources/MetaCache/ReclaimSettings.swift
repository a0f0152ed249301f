// The knobs of reclaim (issue 4): the memory budget, the shrinker policy, what to do with dirty
// objects, segregation of leaf and directory dentries, how many threads may reclaim directly,
// per-cache limits and the bound on negative dentries. Every one can be given at mount time
// (CacheConfiguration.reclaim) and changed on a live cache through `Reclaimer`, except slab
// merging, which decides how slabs are laid out and so is fixed when the cache is made
// (CacheConfiguration.merge).

/// How a shrinker picks what to free.
public enum ReclaimPolicy: String, CaseIterable, Sendable {
    /// Objects from the LRU tail; a referenced object gets a second chance (its bit is cleared
    /// and it is rotated), as Linux's list_lru shrinkers do. The extent shrinker walks inodes
    /// round-robin instead, as ext4's es shrinker does.
    case lru
    /// The slabs that are cheapest to empty (no pinned object; fewest live, referenced and dirty
    /// objects) are chosen and every object on them is freed, so each step gives back whole
    /// pages.
    case page
    /// LRU order, but page-aware: a referenced object that is the last one on its slab goes
    /// without a second chance (freeing it frees the page), and when an evicted object leaves
    /// its slab nearly empty, the other objects on that page go too.
    case hybrid

    var code: Int { switch self { case .lru: 0; case .page: 1; case .hybrid: 2 } }
    init(code: Int) { self = code == 1 ? .page : (code == 2 ? .hybrid : .lru) }
}

/// What reclaim does with a dirty object.
public enum DirtyMode: String, CaseIterable, Sendable {
    /// Skip it and rotate it to the LRU head, as XFS's inode reclaim does; the flusher writes it
    /// back in its own time (reclaim kicks it).
    case skip
    /// Write dirty objects back in one batch (the owner's writeback hook), then free them. Only
    /// the background reclaimer and explicit `shrink` requests write back; direct reclaim on an
    /// allocating thread never does (the caller may hold the owner's locks).
    case writeback
}

public struct ReclaimSettings: Sendable, Equatable {
    /// Slab memory the caches may hold, in bytes; 0: no budget.
    public var budgetBytes: Int = 0
    /// `--budget auto`: no fixed budget; reclaim an eighth of the slab memory whenever the
    /// machine or the daemon's cgroup reports memory pressure (PressureMonitor.swift).
    public var budgetAuto: Bool = false
    public var policy: ReclaimPolicy = .lru
    public var dirty: DirtyMode = .skip
    /// Leaf and directory dentries in slabs of their own.
    public var segregate: Bool = false
    /// Threads that may reclaim directly at once; the others wait briefly.
    public var reclaimers: Int = 2
    /// Negative dentries kept at most (clean ones beyond it are trimmed oldest first); 0: no bound.
    public var negativeMax: Int = 0
    /// Per-shrinker caps in bytes of slab memory (shrinker name → bytes).
    public var limits: [String: Int] = [:]
    /// Tell the kernel to drop its own dentry when metafs evicts one (the dentry cache's
    /// eviction observer: the FUSE layer's KernelInvalidator), so that reclaim reaches across the
    /// user/kernel boundary. Matters with entry timeouts above 0 (cached mode).
    public var kernelInvalidate: Bool = false
    public init() {}

    /// Bounds on the values (a bad value is refused and changes nothing).
    public static let maxReclaimers = 64
    public static let minimumBudget = 1 << 20
}

/// How much a reclaim request asks for.
public enum ReclaimGoal: Equatable, Sendable {
    /// Free this many objects.
    case objects(Int)
    /// Give back this many slab pages (the budget's unit).
    case pages(Int)
}
