// The memory budget: how much slab memory the caches may hold, and the check every allocation
// passes through.
//
// Watermarks, in the shape of the page allocator's (mm/page_alloc.c): with a budget B,
//
//     high = B - B/16    the background reclaimer is woken once resident slab memory passes it
//     low  = B - B/8     ... and reclaims until it is back under this
//     B                  an allocation that needs a new slab while usage is at B reclaims
//                        directly (clean objects only) before it takes the slab
//
// "Needs a new slab": a slab cache with free slots in its resident slabs can serve the
// allocation without growing, so direct reclaim runs only when the allocator would otherwise ask
// the OS for a page, as in Linux, where the slab allocator enters reclaim only from the page
// allocator's slow path. Every object cache calls `admit` at the top of its insert, before it
// takes any lock of its own: direct reclaim takes shard locks (try-locks) of every cache.
//
// A per-cache limit (`limit CACHE SIZE`) is checked the same way against that cache's own slab
// bytes.

import Synchronization

final class MemoryBudget: @unchecked Sendable {
    /// Resident slab bytes of every slab cache of one MetaCache.
    let accounting = SlabAccounting()
    /// The budget in bytes; 0: none.
    let budgetBytes = Atomic<Int>(0)
    let negativeMax = Atomic<Int>(0)
    /// Set once by MetaCache (weak: the reclaimer owns the caches, not the other way round).
    weak var reclaimer: Reclaimer?

    init() {}

    static func high(_ budget: Int) -> Int { budget - budget / 16 }
    static func low(_ budget: Int) -> Int { budget - budget / 8 }

    /// Admission of an allocation from `slab`: nothing to do unless a budget or a limit is set.
    @inline(__always)
    func admit(_ slab: SlabCache) {
        let b = budgetBytes.load(ordering: .relaxed)
        if b == 0 && slab.limitBytes.load(ordering: .relaxed) == 0 { return }
        admitSlow(slab, b)
    }

    private func admitSlow(_ slab: SlabCache, _ b: Int) {
        guard let reclaimer else { return }
        let used = accounting.bytes
        if b > 0 && used > Self.high(b) { reclaimer.wake() }
        let limit = slab.limitBytes.load(ordering: .relaxed)
        if limit > 0 && slab.residentBytes.load(ordering: .relaxed) > limit - limit / 16 { reclaimer.wake() }
        guard !slab.hasFreeSlot else { return }
        let overBudget = b > 0 && used + slab.slabSize > b
        let overLimit = limit > 0 && slab.residentBytes.load(ordering: .relaxed) + slab.slabSize > limit
        if overBudget || overLimit {
            reclaimer.directReclaim(for: slab, overBudget: overBudget, overLimit: overLimit)
        }
    }

    /// A negative dentry was inserted: trim the oldest clean ones when there are too many.
    @inline(__always)
    func negativeInserted(_ dentries: DentryCache) {
        let max = negativeMax.load(ordering: .relaxed)
        guard max > 0 else { return }
        // Trim 32 more than the excess, so that the walk is paid once per 32 inserts.
        let over = dentries.negativeCount.load(ordering: .relaxed) - max
        if over > 0 { reclaimer?.trimNegative(over + 31) }
    }
}
