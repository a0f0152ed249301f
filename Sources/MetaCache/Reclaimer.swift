// The reclaimer: runs the shrinkers under the memory budget, in the background and directly.
//
// Background: one thread per MetaCache (`start`), woken when resident slab memory passes the
// high watermark (Budget.swift) or once a second, reclaims down to the low watermark, brings
// capped caches under their `limit`, and trims negative dentries beyond `negative_max`. It may
// call the owner's writeback hook (dirty writeback mode).
//
// Direct: an allocation that needs a new slab while usage is at the budget reclaims on the
// allocating thread first. At most `reclaimers` threads do so at once; the others wait up to
// 2 ms for a slot (or for a free object slot to appear) and then go ahead without reclaiming.
// Direct reclaim frees clean objects only and NEVER calls the writeback hook: the allocating
// thread may hold the owner's locks (metafs's FUSE workers insert under the shared namespace
// lock, and its writeback takes that lock exclusively). It wakes the background thread instead.
//
// Pressure: each reclaim round asks every shrinker for a share of the goal in proportion to
// what its `count` says it could free (pages for a page goal, objects for an object goal), in
// the spirit of vfs_cache_pressure; rounds repeat until the goal is met, nothing more can be
// freed, or the scan bound is reached. With `dirty writeback`, a round that met dirty objects it
// could have freed calls the writeback hook once (one batch: the owner commits everything) and
// the next round frees them. Emptied slabs go back to the OS at the end of every run.
//
// Lock rules: no MetaCache lock is held across a call of the writeback hook or across a wait;
// shrinkers only try-lock hash shards; nothing here blocks on a lock that a thread running the
// writeback hook may hold (direct reclaim coordinates through atomics only).

import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What one reclaim request did.
public struct ReclaimReport: Sendable, Equatable {
    public var scanned = 0
    public var freedObjects = 0
    public var freedPages = 0
    public var freedBytes: Int { freedPages * pageSize }
    public var pageSize = 4096
    public var skippedPinned = 0
    public var skippedDirty = 0
    public var skippedReferenced = 0
    public var writebackBatches = 0
    public var lockBusy = 0
    public var nanoseconds: UInt64 = 0
    /// Per shrinker: (name, objects freed, pages freed).
    public var perShrinker: [ShrinkerFreed] = []
    public var slabBytesBefore = 0
    public var slabBytesAfter = 0
    public init() {}
}

public struct ShrinkerFreed: Sendable, Equatable {
    public var name: String
    public var objects: Int
    public var pages: Int
}

/// The reclaimer's own counters and the settings in force, for stats.json.
public struct ReclaimStatistics: Sendable {
    public var settings: ReclaimSettings
    public var merge: Bool
    public var budgetBytes: Int
    public var highWatermarkBytes: Int
    public var lowWatermarkBytes: Int
    public var slabBytes: Int
    public var directReclaims: UInt64
    public var directWaits: UInt64
    public var directGiveUps: UInt64
    public var backgroundRuns: UInt64
    public var writebackBatches: UInt64
    public var writebackErrors: UInt64
    public var negativeTrimmed: UInt64
    public var negativeDentries: Int
    public var shrinkers: [ShrinkerStatistics]
    /// `--budget auto`: where pressure is read from ("" when not armed) and events seen.
    public var pressureSource: String = ""
    public var pressureEvents: UInt64 = 0
}

public final class Reclaimer: @unchecked Sendable {
    let budget: MemoryBudget
    let dentries: DentryCache
    let inodes: InodeCache
    let merge: Bool
    let dentryShrinker: DentryShrinker
    let inodeShrinker: InodeShrinker
    let extentShrinker: ExtentShrinker
    /// In the order reclaim visits them: dentries first (they pin inodes).
    let shrinkers: [Shrinker]
    private let slabCaches: [SlabCache]
    private let pageSize: Int

    // Settings read on hot paths are atomics; the rest sits under `settingsLock`.
    private let policyCode = Atomic<Int>(0)
    private let dirtyCode = Atomic<Int>(0)
    private let maxReclaimers = Atomic<Int>(2)
    private let settingsLock = Mutex<ReclaimSettings>(ReclaimSettings())

    private struct Hooks {
        var writeback: (@Sendable () throws -> Void)?
        var kick: (@Sendable () -> Void)?
    }
    private let hooks = Mutex(Hooks())

    // Counters.
    private let directReclaims = Atomic<UInt64>(0)
    private let directWaits = Atomic<UInt64>(0)
    private let directGiveUps = Atomic<UInt64>(0)
    private let backgroundRuns = Atomic<UInt64>(0)
    private let writebackBatches = Atomic<UInt64>(0)
    private let writebackErrors = Atomic<UInt64>(0)
    private let negativeTrimmed = Atomic<UInt64>(0)
    private let activeDirect = Atomic<Int>(0)
    private let trimming = Atomic<Bool>(false)
    /// `--budget auto`.
    private var pressure: PressureMonitor!
    private let pressurePending = Atomic<Bool>(false)

    // The background thread.
    private let thread = Mutex<pthread_t?>(nil)
    private let wakeMutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wakeCondition: UnsafeMutablePointer<pthread_cond_t>
    private let wakePending = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private let running = Atomic<Bool>(false)

    init(budget: MemoryBudget, dentries: DentryCache, inodes: InodeCache, merge: Bool, slabCaches: [SlabCache],
         pageSize: Int, settings: ReclaimSettings) {
        self.budget = budget
        self.dentries = dentries
        self.inodes = inodes
        self.merge = merge
        self.slabCaches = slabCaches
        self.pageSize = pageSize
        dentryShrinker = DentryShrinker(cache: dentries)
        inodeShrinker = InodeShrinker(cache: inodes)
        extentShrinker = ExtentShrinker(cache: inodes)
        shrinkers = [dentryShrinker, inodeShrinker, extentShrinker]
        wakeMutex = .allocate(capacity: 1)
        wakeCondition = .allocate(capacity: 1)
        pthread_mutex_init(wakeMutex, nil)
        pthread_cond_init(wakeCondition, nil)
        pressure = PressureMonitor { [weak self] in self?.pressureEvent() }
        apply(settings)
    }

    deinit {
        stop()
        pthread_cond_destroy(wakeCondition)
        pthread_mutex_destroy(wakeMutex)
        wakeCondition.deallocate()
        wakeMutex.deallocate()
    }

    // MARK: Settings

    /// Applies every setting at once (mount time). Unknown limit names are ignored here:
    /// validate with `shrinkerNames` first.
    func apply(_ s: ReclaimSettings) {
        settingsLock.withLock { $0 = s }
        budget.budgetBytes.store(max(0, s.budgetBytes), ordering: .relaxed)
        policyCode.store(s.policy.code, ordering: .relaxed)
        dirtyCode.store(s.dirty == .writeback ? 1 : 0, ordering: .relaxed)
        maxReclaimers.store(max(1, s.reclaimers), ordering: .relaxed)
        budget.negativeMax.store(max(0, s.negativeMax), ordering: .relaxed)
        dentries.segregate.store(s.segregate, ordering: .relaxed)
        dentries.notifyEvictions.store(s.kernelInvalidate, ordering: .relaxed)
        for sh in shrinkers { sh.slab.limitBytes.store(max(0, s.limits[sh.name] ?? 0), ordering: .relaxed) }
        // The pressure monitor runs while the background reclaimer does and `budget auto` is set.
        if s.budgetAuto {
            if thread.withLock({ $0 != nil }) { pressure.start() }
        } else {
            pressure.stop()
        }
    }

    /// A memory-pressure event (`budget auto`): the background reclaimer takes an eighth of the
    /// slab memory back.
    func pressureEvent() {
        pressurePending.store(true, ordering: .relaxed)
        wake(force: true)
    }

    /// For tests: what the monitor would do on a PSI event.
    func simulatePressure() { pressure.fire() }

    public var settings: ReclaimSettings { settingsLock.withLock { $0 } }
    public var shrinkerNames: [String] { shrinkers.map(\.name) }
    var policy: ReclaimPolicy { ReclaimPolicy(code: policyCode.load(ordering: .relaxed)) }
    var dirtyMode: DirtyMode { dirtyCode.load(ordering: .relaxed) == 1 ? .writeback : .skip }

    /// Changes settings (a control command): `change` edits a copy; nothing changes if it throws.
    public func update<E: Error>(_ change: (inout ReclaimSettings) throws(E) -> Void) throws(E) {
        var s = settings
        try change(&s)
        apply(s)
        wake()
    }

    /// The writeback hook: commits every dirty object and marks it clean (metafs: `FileSystem.sync`).
    /// Called only by the background reclaimer and by `shrink`/`scan` requests, never from an
    /// allocating thread. `kick` asks the owner to write back soon (dirty skip mode).
    public func setWriteback(_ writeback: (@Sendable () throws -> Void)?, kick: (@Sendable () -> Void)? = nil) {
        hooks.withLock { $0 = Hooks(writeback: writeback, kick: kick) }
    }

    // MARK: Background thread

    /// Starts the background reclaimer (idempotent).
    public func start() {
        thread.withLock { t in
            guard t == nil else { return }
            stopping.store(false, ordering: .relaxed)
            t = spawnThread { [self] in backgroundLoop() }
        }
        if settings.budgetAuto { pressure.start() }
    }

    /// Stops the background reclaimer and waits for it (idempotent).
    public func stop() {
        pressure?.stop()
        guard let tid = thread.withLock({ t -> pthread_t? in defer { t = nil }; return t }) else { return }
        stopping.store(true, ordering: .releasing)
        wake(force: true)
        pthread_join(tid, nil)
    }

    /// Wakes the background reclaimer (cheap when it is already woken).
    func wake(force: Bool = false) {
        if !force && wakePending.load(ordering: .relaxed) { return }
        wakePending.store(true, ordering: .relaxed)
        pthread_mutex_lock(wakeMutex)
        pthread_cond_signal(wakeCondition)
        pthread_mutex_unlock(wakeMutex)
    }

    private func backgroundLoop() {
        running.store(true, ordering: .relaxed)
        defer { running.store(false, ordering: .relaxed) }
        var busy = false
        while !stopping.load(ordering: .acquiring) {
            if !busy {
                pthread_mutex_lock(wakeMutex)
                if !wakePending.load(ordering: .relaxed) && !stopping.load(ordering: .relaxed) {
                    var ts = timespec()
                    clock_gettime(CLOCK_REALTIME, &ts)
                    ts.tv_sec += 1
                    _ = pthread_cond_timedwait(wakeCondition, wakeMutex, &ts)
                }
                pthread_mutex_unlock(wakeMutex)
            }
            wakePending.store(false, ordering: .relaxed)
            if stopping.load(ordering: .acquiring) { break }
            busy = backgroundPass()
        }
    }

    /// One pass of background work. Returns true if it made progress and more is wanted (the
    /// loop then goes again at once).
    @discardableResult
    func backgroundPass() -> Bool {
        var again = false
        if pressurePending.exchange(false, ordering: .relaxed) {
            backgroundRuns.wrappingAdd(1, ordering: .relaxed)
            let pages = max(1, budget.accounting.bytes / pageSize / 8)
            reclaim(.pages(pages), only: nil, mayWriteback: true, direct: false)
        }
        let b = budget.budgetBytes.load(ordering: .relaxed)
        let used = budget.accounting.bytes
        if b > 0 && used > MemoryBudget.high(b) {
            backgroundRuns.wrappingAdd(1, ordering: .relaxed)
            let pages = max(1, (used - MemoryBudget.low(b) + pageSize - 1) / pageSize)
            let r = reclaim(.pages(pages), only: nil, mayWriteback: true, direct: false)
            let now = budget.accounting.bytes
            if now > MemoryBudget.high(b) {
                if r.skippedDirty > 0 && dirtyMode == .skip { kickWriteback() }
                again = r.freedObjects > 0
            }
        }
        for sh in shrinkers {
            let limit = sh.slab.limitBytes.load(ordering: .relaxed)
            let bytes = sh.slab.residentBytes.load(ordering: .relaxed)
            guard limit > 0, bytes > limit - limit / 16 else { continue }
            backgroundRuns.wrappingAdd(1, ordering: .relaxed)
            let pages = max(1, (bytes - (limit - limit / 8) + pageSize - 1) / pageSize)
            let r = reclaim(.pages(pages), only: sh, mayWriteback: true, direct: false)
            if sh.slab.residentBytes.load(ordering: .relaxed) > limit && r.freedObjects > 0 { again = true }
        }
        let negMax = budget.negativeMax.load(ordering: .relaxed)
        if negMax > 0 {
            let over = dentries.negativeCount.load(ordering: .relaxed) - negMax
            if over > 0 { trimNegative(over) }
        }
        return again
    }

    func kickWriteback() {
        let k = hooks.withLock { $0.kick }
        k?()
    }

    // MARK: Direct reclaim

    /// An allocation from `slab` needs a new slab while over the budget (or the slab's limit).
    func directReclaim(for slab: SlabCache, overBudget: Bool, overLimit: Bool) {
        wake()
        let limit = maxReclaimers.load(ordering: .relaxed)
        var waitedSince: UInt64 = 0
        while true {
            let n = activeDirect.load(ordering: .relaxed)
            if n < limit {
                if activeDirect.compareExchange(expected: n, desired: n + 1, ordering: .acquiring).exchanged { break }
                continue
            }
            // Too many reclaimers: wait briefly for one of them, or for room to appear.
            let now = monotonicNanoseconds()
            if waitedSince == 0 {
                waitedSince = now
                directWaits.wrappingAdd(1, ordering: .relaxed)
            } else if now - waitedSince > 2_000_000 {
                directGiveUps.wrappingAdd(1, ordering: .relaxed)
                return
            }
            usleep(50)
            if slab.hasFreeSlot { return }
        }
        defer { activeDirect.wrappingSubtract(1, ordering: .releasing) }
        directReclaims.wrappingAdd(1, ordering: .relaxed)
        // A small batch (Linux takes SWAP_CLUSTER_MAX pages at a time): enough that the next
        // few allocations find room, small enough to keep the allocating thread's latency low.
        let batch = 8 * slab.pagesPerSlab
        if overBudget {
            let b = budget.budgetBytes.load(ordering: .relaxed)
            let over = budget.accounting.bytes + slab.slabSize - b
            let pages = max(batch, (over + pageSize - 1) / pageSize + batch)
            reclaim(.pages(pages), only: nil, mayWriteback: false, direct: true)
        } else if overLimit, let sh = shrinkers.first(where: { $0.slab === slab }) {
            reclaim(.pages(batch), only: sh, mayWriteback: false, direct: true)
        }
    }

    // MARK: Requests

    /// Reclaims now, on the calling thread, which must hold none of the owner's locks: with
    /// `dirty writeback` this calls the writeback hook. `shrink N` / `N%` / `SIZE`.
    public func shrink(_ goal: ReclaimGoal) -> ReclaimReport {
        reclaim(goal, only: nil, mayWriteback: true, direct: false)
    }

    /// One `scan_objects` call of one shrinker, as a write to its debugfs `scan` file: up to
    /// `nrToScan` objects (the page policy: whole pages holding about that many). With `dirty
    /// writeback`, dirty objects it met are written back in one batch and scanned again.
    public func scan(shrinker name: String, nrToScan: Int) -> ReclaimReport? {
        guard let sh = shrinkers.first(where: { $0.name == name }) else { return nil }
        return reclaim(.objects(max(0, nrToScan)), only: sh, mayWriteback: true, direct: false, singleScan: true)
    }

    /// `count_objects` of one shrinker: what it could free now.
    public func count(shrinker name: String) -> Int? {
        guard let sh = shrinkers.first(where: { $0.name == name }) else { return nil }
        return sh.count(control(mayWriteback: true, direct: false)).objects
    }

    /// Frees up to `count` clean negative dentries, oldest first. One trimmer at a time.
    @discardableResult
    func trimNegative(_ count: Int) -> Int {
        guard trimming.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return 0 }
        defer { trimming.store(false, ordering: .releasing) }
        let start = monotonicNanoseconds()
        let n = dentries.trimNegative(count, start: dentryShrinker.rotor.wrappingAdd(1, ordering: .relaxed).oldValue)
        negativeTrimmed.wrappingAdd(UInt64(n), ordering: .relaxed)
        var r = ScanResult()
        r.scanned = n
        r.freedObjects = n
        dentryShrinker.counters.add(r, nanoseconds: monotonicNanoseconds() &- start)
        return n
    }

    private func control(mayWriteback: Bool, direct: Bool) -> ScanControl {
        ScanControl(nrToScan: 0, policy: policy, dirty: dirtyMode, mayWriteback: mayWriteback && !direct, direct: direct)
    }

    /// The reclaim loop (see the header comment). `only`: one shrinker (limits, debugfs scan).
    @discardableResult
    func reclaim(_ goal: ReclaimGoal, only: Shrinker?, mayWriteback: Bool, direct: Bool, singleScan: Bool = false) -> ReclaimReport {
        let start = monotonicNanoseconds()
        var report = ReclaimReport()
        report.pageSize = pageSize
        report.slabBytesBefore = budget.accounting.bytes
        var sc = control(mayWriteback: mayWriteback, direct: direct)
        let targets = only.map { [$0] } ?? shrinkers
        var freedObjects = [Int](repeating: 0, count: targets.count)
        var freedPages = [Int](repeating: 0, count: targets.count)
        var total = ScanResult()
        let liveObjects = targets.reduce(0) { $0 + $1.slab.figures.liveObjects }
        // Bound on objects looked at: direct reclaim keeps its latency small; others may go
        // round every object a few times (second chances, writeback).
        let maxScan = direct ? 4096 : 4 * liveObjects + 1024
        func met() -> Bool {
            switch goal {
            case .objects(let n): return total.freedObjects >= n
            case .pages(let n): return total.freedPages >= n
            }
        }
        var rounds = 0
        while !met() && total.scanned < maxScan && rounds < 64 {
            rounds += 1
            let counts = targets.map { $0.count(sc) }
            let weights: [Int]
            switch goal {
            case .pages: weights = counts.map { sc.policy == .page ? $0.pages : $0.objects }
            case .objects: weights = counts.map(\.objects)
            }
            let sum = weights.reduce(0, +)
            var round = ScanResult()
            var collected = [[UInt32]](repeating: [], count: targets.count)
            var dirtySeen = [Int](repeating: 0, count: targets.count)
            if sum > 0 {
                for (i, sh) in targets.enumerated() where weights[i] > 0 {
                    let left: Int
                    switch goal {
                    case .objects(let n): left = n - total.freedObjects - round.freedObjects
                    case .pages(let n): left = n - total.freedPages - round.freedPages
                    }
                    guard left > 0 else { break }
                    let share = max(1, Int((Double(left) * Double(weights[i]) / Double(sum)).rounded(.up)))
                    switch goal {
                    case .objects:
                        sc.pagesWanted = 0
                        sc.nrToScan = singleScan ? left : (sc.policy == .page ? share : max(share, 32))
                    case .pages:
                        sc.pagesWanted = share
                        // LRU: look at up to a page's worth of objects per page wanted (at least a
                        // batch), stopping once the pages have come free.
                        sc.nrToScan = sc.policy == .page ? Int.max / 4
                            : min(maxScan, max(64, share * sh.slab.objectsPerSlab / max(1, sh.slab.pagesPerSlab)))
                    }
                    let r = sh.run(sc)
                    freedObjects[i] += r.freedObjects
                    freedPages[i] += r.freedPages
                    collected[i] = r.dirtyHandles
                    dirtySeen[i] = r.dirtySeen
                    round += r
                }
            }
            total += round
            if round.dirtySeen > 0 && sc.collectsDirty && (!met() || singleScan) {
                // Everything dirty that was chosen goes in one writeback batch, then is freed.
                if callWriteback() { report.writebackBatches += 1 }
                sc.wroteBack = true
                for (i, sh) in targets.enumerated() where dirtySeen[i] > 0 {
                    // An object rotated and met again in the same scan is one object.
                    var seen = Set<UInt32>()
                    let handles = collected[i].filter { seen.insert($0).inserted }
                    sh.counters.writeback.wrappingAdd(UInt64(handles.isEmpty ? dirtySeen[i] : handles.count), ordering: .relaxed)
                    guard !handles.isEmpty else { continue }
                    let e = sh.runEvict(handles, sc)
                    freedObjects[i] += e.freedObjects
                    freedPages[i] += e.freedPages
                    total += e
                }
                if singleScan { break }
                continue
            }
            if met() || singleScan || sum == 0 { break }
            // No progress: nothing was freed and no second chance was used up.
            if round.freedObjects == 0 && round.skippedReferenced == 0 { break }
        }
        for c in slabCaches { c.releaseEmptySlabs() }
        report.scanned = total.scanned
        report.freedObjects = total.freedObjects
        report.freedPages = total.freedPages
        report.skippedPinned = total.skippedPinned
        report.skippedDirty = total.skippedDirty
        report.skippedReferenced = total.skippedReferenced
        report.lockBusy = total.lockBusy
        report.perShrinker = targets.enumerated().map { ShrinkerFreed(name: $1.name, objects: freedObjects[$0], pages: freedPages[$0]) }
        report.slabBytesAfter = budget.accounting.bytes
        report.nanoseconds = monotonicNanoseconds() &- start
        return report
    }

    /// Calls the writeback hook (never from direct reclaim). True if it ran without error.
    private func callWriteback() -> Bool {
        guard let hook = hooks.withLock({ $0.writeback }) else { return false }
        do {
            try hook()
            writebackBatches.wrappingAdd(1, ordering: .relaxed)
            return true
        } catch {
            writebackErrors.wrappingAdd(1, ordering: .relaxed)
            return false
        }
    }

    // MARK: Figures

    public func statistics() -> ReclaimStatistics {
        let s = settings
        let b = budget.budgetBytes.load(ordering: .relaxed)
        let sc = control(mayWriteback: true, direct: false)
        return ReclaimStatistics(
            settings: s, merge: merge, budgetBytes: b,
            highWatermarkBytes: b > 0 ? MemoryBudget.high(b) : 0, lowWatermarkBytes: b > 0 ? MemoryBudget.low(b) : 0,
            slabBytes: budget.accounting.bytes,
            directReclaims: directReclaims.load(ordering: .relaxed), directWaits: directWaits.load(ordering: .relaxed),
            directGiveUps: directGiveUps.load(ordering: .relaxed), backgroundRuns: backgroundRuns.load(ordering: .relaxed),
            writebackBatches: writebackBatches.load(ordering: .relaxed), writebackErrors: writebackErrors.load(ordering: .relaxed),
            negativeTrimmed: negativeTrimmed.load(ordering: .relaxed),
            negativeDentries: dentries.negativeCount.load(ordering: .relaxed),
            shrinkers: shrinkers.map { $0.statistics(sc) },
            pressureSource: pressure.running ? pressure.source : "",
            pressureEvents: pressure.events.load(ordering: .relaxed))
    }

    /// `<mount>/.metafs/shrinker/<name>/count`, as Linux's shrinker debugfs prints it for a
    /// shrinker that is not memcg-aware on a one-node machine: "<cgroup inode id> <objects on
    /// node 0>", the cgroup id being 0.
    public func debugfsCount(shrinker name: String) -> String? {
        guard let n = count(shrinker: name) else { return nil }
        return "0 \(n)\n"
    }

    /// `<mount>/.metafs/extent_shrinker_info`, in the shape of ext4's es_shrinker_info.
    public func extentShrinkerInfo() -> String {
        var inodeCount = 0
        var maxIno: UInt64 = 0, maxAll = 0, maxReclaimable = 0
        for i in 0..<inodes.shards.count {
            inodes.shards.withLock(i) { s in
                var h = s.withExtents.head
                while h != nilHandle {
                    inodeCount += 1
                    let r = inodes.ref(h)
                    if inodeCount == 1 || r.extentCount > maxAll {
                        maxIno = r.ino
                        maxAll = r.extentCount
                        maxReclaimable = r.extentCount - r.dirtyExtents
                    }
                    h = s.withExtents.next(of: h, inodes.slab, InodeRef.extentList)
                }
            }
        }
        let slab = inodes.extentSlab
        let all = slab.figures.liveObjects
        let reclaimable = all - slab.total(.dirty)
        let (hits, misses) = (inodes.events.total(2), inodes.events.total(3))
        let c = extentShrinker.counters
        var out = "stats:\n  \(all) objects\n  \(reclaimable) reclaimable objects\n"
        out += "  \(hits)/\(misses) cache hits/misses\n"
        if inodeCount > 0 { out += "  \(inodeCount) inodes on list\n" }
        out += "average:\n  \(c.averageScanNanoseconds.load(ordering: .relaxed) / 1000) us scan time\n"
        out += "  \(c.averageShrunk.load(ordering: .relaxed)) shrunk objects\n"
        if inodeCount > 0 {
            out += "maximum:\n  \(maxIno) inode (\(maxAll) objects, \(maxReclaimable) reclaimable)\n"
            out += "  \(c.scanNanosecondsMax.load(ordering: .relaxed) / 1000) us max scan time\n"
        }
        return out
    }
}
