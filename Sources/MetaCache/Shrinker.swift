// Shrinkers in the kernel's shape (include/linux/shrinker.h): each cache registers one with a
// `count` (how much could be freed now) and a `scan` (free up to so much), and the reclaimer
// calls them. One per object cache: "dentry", "inode", "extent". A shrinker scans under
// try-locks of one hash shard at a time, a bounded batch per lock hold, so two shrinkers (or two
// reclaiming threads) running at once interleave instead of one waiting out the other's scan;
// a busy shard is skipped and counted (`lock_busy`).
//
// Every decision is counted (ShrinkerCounters): objects scanned, freed, skipped because pinned,
// dirty, referenced or under I/O, sent to writeback, shards found busy, dentries relocated, slab
// pages freed, and the time each scan took.

import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What one call to `scan` may do and is asked for.
struct ScanControl {
    /// Objects to look at (LRU policies) or to evict at most (page policy).
    var nrToScan: Int
    /// Page policy: stop once this many slab pages have been freed (0: no page goal).
    var pagesWanted: Int = 0
    var policy: ReclaimPolicy
    var dirty: DirtyMode
    /// This context may call the writeback hook (background reclaimer, `shrink` requests).
    var mayWriteback: Bool
    /// Running on an allocating thread (direct reclaim).
    var direct: Bool
    /// The writeback hook already ran in this reclaim run (one batch per run: what is dirty
    /// after it was dirtied since, and is skipped).
    var wroteBack = false

    /// Dirty objects are collected for a writeback batch (then freed) rather than skipped.
    var collectsDirty: Bool { dirty == .writeback && mayWriteback && !wroteBack }
}

/// What a scan did (added into a shrinker's counters and the reclaim run's totals).
struct ScanResult {
    var scanned = 0
    var freedObjects = 0
    var freedPages = 0
    var skippedPinned = 0
    var skippedDirty = 0
    var skippedReferenced = 0
    var skippedIO = 0
    /// Dirty objects met that a writeback batch would make freeable (the page policy counts
    /// them on the slabs it would empty; the LRU policies also collect their handles).
    var dirtySeen = 0
    /// Dirty objects chosen for eviction: written back in one batch, then freed
    /// (`Shrinker.evictHandles`).
    var dirtyHandles: [UInt32] = []
    var lockBusy = 0

    /// Adds the counts (not the handles).
    static func += (a: inout ScanResult, b: ScanResult) {
        a.scanned += b.scanned; a.freedObjects += b.freedObjects; a.freedPages += b.freedPages
        a.skippedPinned += b.skippedPinned; a.skippedDirty += b.skippedDirty
        a.skippedReferenced += b.skippedReferenced; a.skippedIO += b.skippedIO
        a.dirtySeen += b.dirtySeen; a.lockBusy += b.lockBusy
    }

    /// A dirty object met: collected for the writeback batch, or skipped.
    mutating func dirty(_ h: UInt32, _ sc: ScanControl) {
        if sc.collectsDirty { dirtySeen += 1; dirtyHandles.append(h) } else { skippedDirty += 1 }
    }
}

/// What a shrinker could free now.
struct ShrinkerCount {
    /// Objects that are neither pinned nor (unless writeback is allowed) dirty.
    var objects = 0
    /// Resident slab pages with no pinned (and, unless writeback is allowed, no dirty) object.
    var pages = 0
}

/// One shrinker's counters: relaxed atomics, summed over every scan since mount.
final class ShrinkerCounters: @unchecked Sendable {
    let scanned = Atomic<UInt64>(0)
    let freedObjects = Atomic<UInt64>(0)
    let freedPages = Atomic<UInt64>(0)
    let skippedPinned = Atomic<UInt64>(0)
    let skippedDirty = Atomic<UInt64>(0)
    let skippedReferenced = Atomic<UInt64>(0)
    let skippedIO = Atomic<UInt64>(0)
    let writeback = Atomic<UInt64>(0)
    let lockBusy = Atomic<UInt64>(0)
    let scans = Atomic<UInt64>(0)
    let scanNanoseconds = Atomic<UInt64>(0)
    let scanNanosecondsMax = Atomic<UInt64>(0)
    /// Extent shrinker: a moving average of scan time and objects shrunk, as ext4 keeps them.
    let averageScanNanoseconds = Atomic<UInt64>(0)
    let averageShrunk = Atomic<UInt64>(0)

    func add(_ r: ScanResult, nanoseconds: UInt64) {
        scanned.wrappingAdd(UInt64(r.scanned), ordering: .relaxed)
        freedObjects.wrappingAdd(UInt64(r.freedObjects), ordering: .relaxed)
        freedPages.wrappingAdd(UInt64(r.freedPages), ordering: .relaxed)
        skippedPinned.wrappingAdd(UInt64(r.skippedPinned), ordering: .relaxed)
        skippedDirty.wrappingAdd(UInt64(r.skippedDirty), ordering: .relaxed)
        skippedReferenced.wrappingAdd(UInt64(r.skippedReferenced), ordering: .relaxed)
        skippedIO.wrappingAdd(UInt64(r.skippedIO), ordering: .relaxed)
        lockBusy.wrappingAdd(UInt64(r.lockBusy), ordering: .relaxed)
        scans.wrappingAdd(1, ordering: .relaxed)
        scanNanoseconds.wrappingAdd(nanoseconds, ordering: .relaxed)
        var m = scanNanosecondsMax.load(ordering: .relaxed)
        while nanoseconds > m {
            let (done, now) = scanNanosecondsMax.compareExchange(expected: m, desired: nanoseconds, ordering: .relaxed)
            if done { break }
            m = now
        }
        // ext4: es_stats_scan_time = (scan_time + es_stats_scan_time * 3) / 4, likewise shrunk.
        let avg = averageScanNanoseconds.load(ordering: .relaxed)
        averageScanNanoseconds.store(avg == 0 ? nanoseconds : (nanoseconds + avg * 3) / 4, ordering: .relaxed)
        let shrunk = averageShrunk.load(ordering: .relaxed)
        averageShrunk.store((UInt64(r.freedObjects) + shrunk * 3) / 4, ordering: .relaxed)
    }
}

/// One shrinker's figures, as stats.json shows them.
public struct ShrinkerStatistics: Equatable, Sendable {
    public var name: String
    public var scanned: UInt64 = 0
    public var freedObjects: UInt64 = 0
    public var freedPages: UInt64 = 0
    public var skippedPinned: UInt64 = 0
    public var skippedDirty: UInt64 = 0
    public var skippedReferenced: UInt64 = 0
    public var skippedIO: UInt64 = 0
    public var writeback: UInt64 = 0
    public var lockBusy: UInt64 = 0
    public var relocated: UInt64 = 0
    public var scans: UInt64 = 0
    public var scanMicrosecondsTotal: Double = 0
    public var scanMicrosecondsAverage: Double = 0
    public var scanMicrosecondsMax: Double = 0
    /// What `count` says now (freeable objects).
    public var count: Int = 0
    /// Bytes of the shrinker's slab caches, and its limit (0: none).
    public var slabBytes: Int = 0
    public var limitBytes: Int = 0
    public init(name: String) { self.name = name }
}

/// The shape every cache's shrinker has. Subclasses: DentryShrinker, InodeShrinker,
/// ExtentShrinker (in the files named after them).
class Shrinker: @unchecked Sendable {
    let name: String
    let counters = ShrinkerCounters()
    /// The slab cache whose pages this shrinker frees (and that `limit` caps).
    let slab: SlabCache
    /// Where the next scan starts (shard index), so successive scans spread over all shards.
    let rotor = Atomic<Int>(0)

    init(name: String, slab: SlabCache) {
        self.name = name
        self.slab = slab
    }

    /// What could be freed now.
    func count(_ sc: ScanControl) -> ShrinkerCount { ShrinkerCount() }

    /// Frees what `sc` asks for; the caller adds the result to the counters (see `run`).
    func scanObjects(_ sc: ScanControl) -> ScanResult { ScanResult() }

    /// Evicts objects chosen earlier, verified again one by one (after a writeback batch).
    func evictHandles(_ handles: [UInt32], _ sc: ScanControl) -> ScanResult { ScanResult() }

    /// `evictHandles`, counted as a scan.
    func runEvict(_ handles: [UInt32], _ sc: ScanControl) -> ScanResult {
        let start = monotonicNanoseconds()
        let r = evictHandles(handles, sc)
        counters.add(r, nanoseconds: monotonicNanoseconds() &- start)
        return r
    }

    /// Extra objects moved between slab kinds (dentries only).
    var relocatedCount: UInt64 { 0 }

    /// Scans and counts the scan.
    func run(_ sc: ScanControl) -> ScanResult {
        let start = monotonicNanoseconds()
        let r = scanObjects(sc)
        counters.add(r, nanoseconds: monotonicNanoseconds() &- start)
        return r
    }

    func statistics(_ sc: ScanControl) -> ShrinkerStatistics {
        let c = counters
        var s = ShrinkerStatistics(name: name)
        s.scanned = c.scanned.load(ordering: .relaxed)
        s.freedObjects = c.freedObjects.load(ordering: .relaxed)
        s.freedPages = c.freedPages.load(ordering: .relaxed)
        s.skippedPinned = c.skippedPinned.load(ordering: .relaxed)
        s.skippedDirty = c.skippedDirty.load(ordering: .relaxed)
        s.skippedReferenced = c.skippedReferenced.load(ordering: .relaxed)
        s.skippedIO = c.skippedIO.load(ordering: .relaxed)
        s.writeback = c.writeback.load(ordering: .relaxed)
        s.lockBusy = c.lockBusy.load(ordering: .relaxed)
        s.relocated = relocatedCount
        s.scans = c.scans.load(ordering: .relaxed)
        let total = Double(c.scanNanoseconds.load(ordering: .relaxed)) / 1000
        s.scanMicrosecondsTotal = total
        s.scanMicrosecondsAverage = s.scans == 0 ? 0 : total / Double(s.scans)
        s.scanMicrosecondsMax = Double(c.scanNanosecondsMax.load(ordering: .relaxed)) / 1000
        s.count = count(sc).objects
        s.slabBytes = slab.residentBytes.load(ordering: .relaxed)
        s.limitBytes = slab.limitBytes.load(ordering: .relaxed)
        return s
    }

    // MARK: Helpers shared by the shrinkers

    /// Visits shards from the rotor on, giving each a batch of at most `batch` objects, until
    /// `body` has consumed `total`, says it is done, or a whole round gave nothing.
    /// `body(shard, n)` returns how many of the n it used (0 when the shard was busy or had
    /// nothing).
    func roundRobin(shards: Int, total: Int, batch: Int = 32, _ body: (Int, Int) -> (used: Int, done: Bool)) {
        var remaining = total
        var idle = 0
        var i = rotor.wrappingAdd(1, ordering: .relaxed).oldValue & (shards - 1)
        while remaining > 0 && idle < shards {
            let n = min(batch, remaining)
            let (used, done) = body(i, n)
            if done { return }
            if used == 0 { idle += 1 } else { idle = 0; remaining -= used }
            i = (i + 1) & (shards - 1)
        }
    }
}

@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
}
