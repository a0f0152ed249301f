// stats.json as typed values, for the workload summaries, `metafs stats --watch` and `metafs
// compare`. Keys that a build does not write (the reclaim counters before the reclaim work lands)
// are simply absent: `budgetBytes` is nil and `shrinkers` is empty.

/// One slab cache's line of stats.json.
public struct CacheRow: Sendable, Equatable {
    public var name: String
    public var activeObjects: UInt64 = 0
    public var totalObjects: UInt64 = 0
    public var objectSize: UInt64 = 0
    public var objectsPerSlab: UInt64 = 0
    public var pagesPerSlab: UInt64 = 0
    public var activeSlabs: UInt64 = 0
    public var totalSlabs: UInt64 = 0
    public var hits: UInt64 = 0
    public var misses: UInt64 = 0
    public var allocations: UInt64 = 0
    public var frees: UInt64 = 0
    public var negative: UInt64 = 0
    public var dirty: UInt64 = 0
    public var pinned: UInt64 = 0
    public var slabBytes: UInt64 = 0
    public init(name: String) { self.name = name }

    /// Bytes of live objects / bytes of object slots (slabtop's USE).
    public var activeBytes: UInt64 { activeObjects * objectSize }
    public var totalBytes: UInt64 { totalObjects * objectSize }
}

/// One shrinker's counters (issue 4's keys, in its order; other numeric keys are kept too).
public struct ShrinkerRow: Sendable, Equatable {
    public static let keys = ["scanned", "freed_objects", "freed_pages", "skipped_pinned", "skipped_dirty",
                              "skipped_referenced", "writeback", "lock_busy", "relocated", "scan_us_avg", "scan_us_max"]
    public var name: String
    /// key → value, in document order.
    public var counters: [(String, Double)]
    public init(name: String, counters: [(String, Double)]) { self.name = name; self.counters = counters }
    public subscript(key: String) -> Double? { counters.first { $0.0 == key }?.1 }
    public func value(_ key: String) -> Double { self[key] ?? 0 }

    public static func == (a: ShrinkerRow, b: ShrinkerRow) -> Bool {
        a.name == b.name && a.counters.count == b.counters.count && zip(a.counters, b.counters).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

public struct StatsSnapshot: Sendable, Equatable {
    public var uptimeSeconds = 0.0
    public var slabBytes: UInt64 = 0
    public var cacheBytes: UInt64 = 0
    public var rssBytes: UInt64 = 0
    /// The RSS split (nil when the build does not report it): anonymous memory (slabs, tables,
    /// heap) and file-backed memory (the mapped store).
    public var rssAnonBytes: UInt64?
    public var rssFileBytes: UInt64?
    /// `budget_bytes` when the build has a memory budget (nil: no key; 0: no budget set).
    public var budgetBytes: UInt64?
    public var caches: [CacheRow] = []
    public var shrinkers: [ShrinkerRow] = []
    public var commits: UInt64 = 0
    public var committedObjects: UInt64 = 0
    public var knownInodes: UInt64 = 0
    public var openFiles: UInt64 = 0
    /// FUSE requests and errors over all operations.
    public var fuseRequests: UInt64 = 0
    public var fuseErrors: UInt64 = 0
    public init() {}

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
    }

    public static func parse(_ text: String) throws(ParseError) -> StatsSnapshot {
        let root: JSONValue
        do { root = try JSONValue.parse(text) } catch { throw ParseError(message: "stats.json: \(error)") }
        guard root.object != nil else { throw ParseError(message: "stats.json: not a JSON object") }
        guard let caches = root["caches"]?.array else { throw ParseError(message: "stats.json: no \"caches\" array") }
        var s = StatsSnapshot()
        s.uptimeSeconds = root["uptime_seconds"]?.double ?? 0
        s.slabBytes = root["slab_bytes"]?.uint64 ?? 0
        s.cacheBytes = root["cache_bytes"]?.uint64 ?? 0
        s.rssBytes = root["rss_bytes"]?.uint64 ?? 0
        s.rssAnonBytes = root["rss_anon_bytes"]?.uint64
        s.rssFileBytes = root["rss_file_bytes"]?.uint64
        s.budgetBytes = root["budget_bytes"]?.uint64
        for c in caches {
            guard let name = c["name"]?.string else { throw ParseError(message: "stats.json: a cache without a name") }
            var row = CacheRow(name: name)
            func u(_ k: String) -> UInt64 { c[k]?.uint64 ?? 0 }
            row.activeObjects = u("active_objects"); row.totalObjects = u("total_objects"); row.objectSize = u("object_size")
            row.objectsPerSlab = u("objects_per_slab"); row.pagesPerSlab = u("pages_per_slab")
            row.activeSlabs = u("active_slabs"); row.totalSlabs = u("total_slabs")
            row.hits = u("hits"); row.misses = u("misses"); row.allocations = u("allocations"); row.frees = u("frees")
            row.negative = u("negative"); row.dirty = u("dirty"); row.pinned = u("pinned"); row.slabBytes = u("slab_bytes")
            s.caches.append(row)
        }
        // "shrinkers": either {"NAME": {counters}} or [{"name": "NAME", counters...}].
        func shrinker(_ name: String, _ v: JSONValue) -> ShrinkerRow? {
            guard let fields = v.object else { return nil }
            return ShrinkerRow(name: name, counters: fields.compactMap { k, x in x.double.map { (k, $0) } })
        }
        if let object = root["shrinkers"]?.object {
            s.shrinkers = object.compactMap { shrinker($0.0, $0.1) }
        } else if let array = root["shrinkers"]?.array {
            s.shrinkers = array.enumerated().compactMap { i, v in shrinker(v["name"]?.string ?? "shrinker\(i)", v) }
        }
        if let store = root["store"] {
            s.commits = store["commits"]?.uint64 ?? 0
            s.committedObjects = store["committed_objects"]?.uint64 ?? 0
        }
        s.knownInodes = root["known_inodes"]?.uint64 ?? 0
        s.openFiles = root["open_files"]?.uint64 ?? 0
        for (_, op) in root["fuse"]?.object ?? [] {
            s.fuseRequests += op["count"]?.uint64 ?? 0
            s.fuseErrors += op["errors"]?.uint64 ?? 0
        }
        return s
    }

    // Totals over the caches.
    public var activeObjects: UInt64 { caches.reduce(0) { $0 + $1.activeObjects } }
    public var totalObjects: UInt64 { caches.reduce(0) { $0 + $1.totalObjects } }
    public var activeBytes: UInt64 { caches.reduce(0) { $0 + $1.activeBytes } }
    public var totalBytes: UInt64 { caches.reduce(0) { $0 + $1.totalBytes } }
    public var activeSlabs: UInt64 { caches.reduce(0) { $0 + $1.activeSlabs } }
    public var totalSlabs: UInt64 { caches.reduce(0) { $0 + $1.totalSlabs } }
    public var hits: UInt64 { caches.reduce(0) { $0 + $1.hits } }
    public var misses: UInt64 { caches.reduce(0) { $0 + $1.misses } }
    public var negative: UInt64 { caches.reduce(0) { $0 + $1.negative } }
    public var dirty: UInt64 { caches.reduce(0) { $0 + $1.dirty } }
    public var pinned: UInt64 { caches.reduce(0) { $0 + $1.pinned } }
    /// A shrinker counter summed over the shrinkers.
    public func shrinkerTotal(_ key: String) -> Double { shrinkers.reduce(0) { $0 + $1.value(key) } }
    public func shrinkerMax(_ key: String) -> Double { shrinkers.reduce(0) { max($0, $1.value(key)) } }
    /// Microseconds spent scanning, when the shrinkers report it: `scan_us_total`, else
    /// `scans` x `scan_us_avg`; nil when neither is there.
    public var reclaimMicroseconds: Double? {
        var total = 0.0, known = false
        for s in shrinkers {
            if let t = s["scan_us_total"] { total += t; known = true }
            else if let n = s["scans"], let avg = s["scan_us_avg"] { total += n * avg; known = true }
        }
        return known ? total : nil
    }
}
