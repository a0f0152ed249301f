import Glibc
import MetaCache

/// Everything one rendering of a control file shows, gathered at open time.
public struct ControlSnapshot: Sendable {
    public var statistics: FileSystemStatistics
    public var fuse: [FuseStatistics.Snapshot]
    public var uptimeSeconds: Double
    /// The budget, the reclaim settings and every shrinker's counters (nil: not gathered).
    public var reclaim: ReclaimStatistics?
    /// Dentry invalidations sent to the kernel (`kernel_invalidate`).
    public var invalidations: (sent: UInt64, notCached: UInt64, dropped: UInt64, failed: UInt64) = (0, 0, 0, 0)
    public var rssBytes: UInt64 { statistics.rssBytes }
    public init(statistics: FileSystemStatistics, fuse: [FuseStatistics.Snapshot], uptimeSeconds: Double,
                reclaim: ReclaimStatistics? = nil) {
        self.statistics = statistics; self.fuse = fuse; self.uptimeSeconds = uptimeSeconds; self.reclaim = reclaim
    }
    /// Slab memory of all caches together.
    public var slabBytes: UInt64 { statistics.caches.reduce(0) { $0 + UInt64(max(0, $1.slabBytes)) } }
}

/// The process's resident set size, from /proc/self/statm (0 if unreadable).
/// Renders the control files' text. Pure functions of a snapshot, so they are unit-tested.
public enum ControlRendering {
    // MARK: stats (human-readable)

    public static func humanBytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : fixed(v, 1) + " " + units[i]
    }

    static func fixed(_ v: Double, _ decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let r = (v * scale).rounded() / scale
        var s = String(r)
        if let dot = s.firstIndex(of: ".") {
            let have = s.distance(from: dot, to: s.endIndex) - 1
            if have < decimals { s += String(repeating: "0", count: decimals - have) }
        } else if decimals > 0 {
            s += "." + String(repeating: "0", count: decimals)
        }
        return s
    }

    static func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
        s.count >= w ? s : (left ? s + String(repeating: " ", count: w - s.count) : String(repeating: " ", count: w - s.count) + s)
    }

    public static func stats(_ snap: ControlSnapshot) -> String {
        let st = snap.statistics
        var out = "metafs statistics (uptime \(fixed(snap.uptimeSeconds, 1)) s)\n\n"
        out += "memory: slab \(humanBytes(snap.slabBytes)), caches total \(humanBytes(st.cacheBytes)), rss \(humanBytes(snap.rssBytes)) (anonymous \(humanBytes(st.rssAnonymousBytes)), store mapping \(humanBytes(st.rssFileBytes)))\n\n"
        out += "caches:\n"
        out += pad("name", 18, left: true) + pad("active", 10) + pad("total", 10) + pad("size", 6) + pad("slabs", 8)
            + pad("hits", 12) + pad("misses", 10) + pad("hit%", 7) + pad("dirty", 8) + pad("pinned", 8)
            + pad("negative", 9) + pad("slab bytes", 12) + "\n"
        for c in st.caches {
            let lookups = c.hits + c.misses
            let hitRate = lookups == 0 ? "-" : fixed(Double(c.hits) * 100 / Double(lookups), 1)
            out += "  " + pad(c.name, 16, left: true) + pad("\(c.activeObjects)", 10) + pad("\(c.totalObjects)", 10)
                + pad("\(c.objectSize)", 6) + pad("\(c.totalSlabs)", 8) + pad("\(c.hits)", 12) + pad("\(c.misses)", 10)
                + pad(hitRate, 7) + pad("\(c.dirty)", 8) + pad("\(c.pinned)", 8) + pad("\(c.negative)", 9)
                + pad(humanBytes(UInt64(max(0, c.slabBytes))), 12) + "\n"
        }
        let usedPct = st.storeBytes == 0 ? 0 : Double(st.storeUsedBytes) * 100 / Double(st.storeBytes)
        out += "\nstore: size \(humanBytes(st.storeBytes)), used \(humanBytes(st.storeUsedBytes)) (\(fixed(usedPct, 1))%)\n"
        out += "  blocks \(st.storeBlocks - st.storeFreeBlocks) used / \(st.storeBlocks), \(st.storeFreeBlocks) free\n"
        out += "  inodes \(st.storeInodes - st.storeFreeInodes) used / \(st.storeInodes), \(st.storeFreeInodes) free\n"
        out += "  commits \(st.commits), objects committed \(st.committedObjects)\n"
        if let r = snap.reclaim { out += reclaimText(r) }
        out += "\nkernel: known inodes \(st.knownInodes), open files \(st.openFiles)"
        let i = snap.invalidations
        out += "; dentry invalidations sent \(i.sent), not cached \(i.notCached), dropped \(i.dropped), failed \(i.failed)\n"
        out += "\nfuse operations (service time in metafs, microseconds):\n"
        out += pad("op", 18, left: true) + pad("count", 12) + pad("errors", 10) + pad("bytes", 14)
            + pad("p50", 9) + pad("p90", 9) + pad("p99", 9) + pad("max", 11) + "\n"
        func us(_ ns: UInt64) -> String { fixed(Double(ns) / 1000, 1) }
        for f in snap.fuse where f.count > 0 {
            let l = f.latency
            out += "  " + pad(f.operation.name, 16, left: true) + pad("\(f.count)", 12) + pad("\(f.errors)", 10)
                + pad(f.bytes == 0 ? "" : "\(f.bytes)", 14)
                + (l.samples == 0 ? "" : pad(us(l.p50), 9) + pad(us(l.p90), 9) + pad(us(l.p99), 9) + pad(us(l.maxNanoseconds), 11))
                + "\n"
        }
        return out
    }

    // MARK: stats.json

    public static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// A small ordered JSON object builder (keys appear in insertion order).
    struct JSONObject {
        var fields: [(String, String)] = []
        mutating func add(_ key: String, _ v: UInt64) { fields.append((key, String(v))) }
        mutating func add(_ key: String, _ v: Int) { fields.append((key, String(v))) }
        mutating func add(_ key: String, _ v: Double) { fields.append((key, v.isFinite ? fixed(v, 3) : "null")) }
        mutating func add(_ key: String, _ v: String) { fields.append((key, jsonString(v))) }
        mutating func add(_ key: String, raw: String) { fields.append((key, raw)) }
        func render(indent: Int = 0) -> String {
            let pad = String(repeating: "  ", count: indent + 1)
            let body = fields.map { pad + jsonString($0.0) + ": " + $0.1 }.joined(separator: ",\n")
            return "{\n" + body + "\n" + String(repeating: "  ", count: indent) + "}"
        }
    }

    public static func json(_ snap: ControlSnapshot) -> String {
        let st = snap.statistics
        var root = JSONObject()
        root.add("version", 1)
        root.add("uptime_seconds", snap.uptimeSeconds)
        root.add("slab_bytes", snap.slabBytes)
        root.add("cache_bytes", st.cacheBytes)
        root.add("rss_bytes", snap.rssBytes)
        root.add("rss_anon_bytes", st.rssAnonymousBytes)
        root.add("rss_file_bytes", st.rssFileBytes)
        if let r = snap.reclaim { addReclaimJSON(r, to: &root) }
        let caches = st.caches.map { c -> String in
            var o = JSONObject()
            o.add("name", c.name)
            o.add("active_objects", c.activeObjects)
            o.add("total_objects", c.totalObjects)
            o.add("object_size", c.objectSize)
            o.add("objects_per_slab", c.objectsPerSlab)
            o.add("pages_per_slab", c.pagesPerSlab)
            o.add("active_slabs", c.activeSlabs)
            o.add("total_slabs", c.totalSlabs)
            o.add("hits", c.hits)
            o.add("misses", c.misses)
            o.add("allocations", c.allocations)
            o.add("frees", c.frees)
            o.add("negative", c.negative)
            o.add("dirty", c.dirty)
            o.add("pinned", c.pinned)
            o.add("slab_bytes", c.slabBytes)
            return "    " + o.render(indent: 2)
        }
        root.add("caches", raw: caches.isEmpty ? "[]" : "[\n" + caches.joined(separator: ",\n") + "\n  ]")
        var store = JSONObject()
        store.add("size_bytes", st.storeBytes)
        store.add("used_bytes", st.storeUsedBytes)
        store.add("blocks", st.storeBlocks)
        store.add("free_blocks", st.storeFreeBlocks)
        store.add("inodes", st.storeInodes)
        store.add("free_inodes", st.storeFreeInodes)
        store.add("commits", st.commits)
        store.add("committed_objects", st.committedObjects)
        root.add("store", raw: store.render(indent: 1))
        root.add("known_inodes", st.knownInodes)
        root.add("open_files", st.openFiles)
        var fuse = JSONObject()
        for f in snap.fuse {
            var o = JSONObject()
            o.add("count", f.count)
            o.add("errors", f.errors)
            if f.operation == .read || f.operation == .write { o.add("bytes", f.bytes) }
            o.add("latency_ns", raw: latencyJSON(f.latency, indent: 3))
            fuse.add(f.operation.name, raw: o.render(indent: 2))
        }
        root.add("fuse", raw: fuse.render(indent: 1))
        var inval = JSONObject()
        inval.add("sent", snap.invalidations.sent)
        inval.add("not_cached", snap.invalidations.notCached)
        inval.add("dropped", snap.invalidations.dropped)
        inval.add("failed", snap.invalidations.failed)
        root.add("kernel_invalidations", raw: inval.render(indent: 1))
        return root.render() + "\n"
    }

    /// Service-time summary of one operation: samples, mean, p50/p90/p99 (bucket upper bounds,
    /// at most 12.5% high), exact max, and the non-empty buckets as [upper bound, count] pairs, so
    /// that two snapshots can be subtracted to get the histogram of an interval.
    static func latencyJSON(_ l: FuseStatistics.Latency, indent: Int) -> String {
        var o = JSONObject()
        o.add("samples", l.samples)
        o.add("mean", l.meanNanoseconds)
        o.add("p50", l.p50)
        o.add("p90", l.p90)
        o.add("p99", l.p99)
        o.add("max", l.maxNanoseconds)
        let pairs = l.buckets.enumerated().filter { $0.element > 0 }
            .map { "[\(LatencyBuckets.upperBound($0.offset)), \($0.element)]" }
        o.add("buckets", raw: "[" + pairs.joined(separator: ", ") + "]")
        return o.render(indent: indent)
    }

    // MARK: metrics (Prometheus text exposition format 0.0.4)

    public static func labelValue(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    public static func metrics(_ snap: ControlSnapshot) -> String {
        let st = snap.statistics
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for s in samples { out += name + (s.labels.isEmpty ? "" : "{\(s.labels)}") + " " + s.value + "\n" }
        }
        func single(_ name: String, _ type: String, _ help: String, _ v: UInt64) { family(name, type, help, [("", String(v))]) }
        func perCache(_ name: String, _ type: String, _ help: String, _ v: (CacheStatistics) -> String) {
            family(name, type, help, st.caches.map { ("cache=\"\(labelValue($0.name))\"", v($0)) })
        }
        single("metafs_slab_bytes", "gauge", "Slab memory held by all caches, in bytes.", snap.slabBytes)
        single("metafs_cache_bytes", "gauge", "Memory owned by the caches (slabs, hash tables, names), in bytes.", st.cacheBytes)
        single("metafs_rss_bytes", "gauge", "Resident set size of the metafs process, in bytes.", snap.rssBytes)
        single("metafs_rss_anon_bytes", "gauge", "Anonymous resident memory (slabs, tables, heap), in bytes.", st.rssAnonymousBytes)
        single("metafs_rss_file_bytes", "gauge", "File-backed resident memory (the mapped store), in bytes.", st.rssFileBytes)
        if let r = snap.reclaim { out += reclaimMetrics(r) }
        family("metafs_uptime_seconds", "gauge", "Seconds since the file system was mounted.", [("", fixed(snap.uptimeSeconds, 3))])
        perCache("metafs_cache_active_objects", "gauge", "Objects in use in the slab cache.") { "\($0.activeObjects)" }
        perCache("metafs_cache_total_objects", "gauge", "Object slots in the slab cache's slabs.") { "\($0.totalObjects)" }
        perCache("metafs_cache_object_size_bytes", "gauge", "Size of one object of the slab cache, in bytes.") { "\($0.objectSize)" }
        perCache("metafs_cache_slabs", "gauge", "Slabs held by the slab cache.") { "\($0.totalSlabs)" }
        perCache("metafs_cache_active_slabs", "gauge", "Slabs of the slab cache with at least one object in use.") { "\($0.activeSlabs)" }
        perCache("metafs_cache_slab_bytes", "gauge", "Slab memory held by the cache, in bytes.") { "\($0.slabBytes)" }
        perCache("metafs_cache_dirty_objects", "gauge", "Objects changed but not yet committed to the store.") { "\($0.dirty)" }
        perCache("metafs_cache_pinned_objects", "gauge", "Objects that cannot be evicted (pinned).") { "\($0.pinned)" }
        perCache("metafs_cache_negative_objects", "gauge", "Negative entries in the cache.") { "\($0.negative)" }
        perCache("metafs_cache_hits_total", "counter", "Lookups answered by the cache.") { "\($0.hits)" }
        perCache("metafs_cache_misses_total", "counter", "Lookups the cache could not answer.") { "\($0.misses)" }
        perCache("metafs_cache_allocations_total", "counter", "Objects allocated in the cache.") { "\($0.allocations)" }
        perCache("metafs_cache_frees_total", "counter", "Objects freed from the cache.") { "\($0.frees)" }
        single("metafs_store_size_bytes", "gauge", "Size of the store file, in bytes.", st.storeBytes)
        single("metafs_store_used_bytes", "gauge", "Bytes of the store in use.", st.storeUsedBytes)
        single("metafs_store_blocks", "gauge", "Data blocks in the store.", st.storeBlocks)
        single("metafs_store_free_blocks", "gauge", "Free data blocks in the store.", st.storeFreeBlocks)
        single("metafs_store_inodes", "gauge", "Inodes in the store's inode table.", st.storeInodes)
        single("metafs_store_free_inodes", "gauge", "Free inodes in the store.", st.storeFreeInodes)
        single("metafs_store_commits_total", "counter", "Journaled transactions committed to the store.", st.commits)
        single("metafs_store_committed_objects_total", "counter", "Cached objects written back to the store.", st.committedObjects)
        single("metafs_known_inodes", "gauge", "Inodes the kernel holds lookup references on.", st.knownInodes)
        single("metafs_open_files", "gauge", "Open file handles.", st.openFiles)
        family("metafs_fuse_requests_total", "counter", "FUSE requests handled, by operation.",
               snap.fuse.map { ("op=\"\($0.operation.name)\"", "\($0.count)") })
        family("metafs_fuse_errors_total", "counter", "FUSE requests answered with an error, by operation.",
               snap.fuse.map { ("op=\"\($0.operation.name)\"", "\($0.errors)") })
        var quantiles: [(labels: String, value: String)] = []
        for f in snap.fuse where f.latency.samples > 0 {
            for (q, v) in [("0.5", f.latency.p50), ("0.9", f.latency.p90), ("0.99", f.latency.p99)] {
                quantiles.append(("op=\"\(f.operation.name)\",quantile=\"\(q)\"", fixed(Double(v) / 1e9, 9)))
            }
        }
        family("metafs_fuse_service_seconds", "gauge",
               "Service time of FUSE requests inside metafs (handler entry to reply), by operation and quantile.", quantiles)
        family("metafs_fuse_bytes_total", "counter", "Bytes read and written through FUSE.",
               snap.fuse.filter { $0.operation == .read || $0.operation == .write }.map { ("op=\"\($0.operation.name)\"", "\($0.bytes)") })
        return out
    }
}

// MARK: - Reclaim (issue 4): the budget, the settings, the shrinkers' counters

extension ControlRendering {
    /// The per-shrinker keys of stats.json, in order: issue 4's list, then `scans` and
    /// `scan_us_total` (for averaging over a run), `skipped_io`, and what `count` says now.
    static func shrinkerFields(_ s: ShrinkerStatistics) -> [(String, String)] {
        [("scanned", "\(s.scanned)"), ("freed_objects", "\(s.freedObjects)"), ("freed_pages", "\(s.freedPages)"),
         ("skipped_pinned", "\(s.skippedPinned)"), ("skipped_dirty", "\(s.skippedDirty)"),
         ("skipped_referenced", "\(s.skippedReferenced)"), ("writeback", "\(s.writeback)"), ("lock_busy", "\(s.lockBusy)"),
         ("relocated", "\(s.relocated)"), ("scan_us_avg", fixed(s.scanMicrosecondsAverage, 3)),
         ("scan_us_max", fixed(s.scanMicrosecondsMax, 3)), ("scans", "\(s.scans)"),
         ("scan_us_total", fixed(s.scanMicrosecondsTotal, 3)), ("skipped_io", "\(s.skippedIO)"), ("count", "\(s.count)"),
         ("slab_bytes", "\(s.slabBytes)"), ("limit_bytes", "\(s.limitBytes)")]
    }

    static func addReclaimJSON(_ r: ReclaimStatistics, to root: inout JSONObject) {
        root.add("budget_bytes", r.budgetBytes)
        var o = JSONObject()
        o.add("budget", r.settings.budgetAuto ? "auto" : (r.budgetBytes == 0 ? "off" : "bytes"))
        o.add("pressure_source", r.pressureSource)
        o.add("pressure_events", r.pressureEvents)
        o.add("policy", r.settings.policy.rawValue)
        o.add("dirty", r.settings.dirty.rawValue)
        o.add("segregate", r.settings.segregate ? "on" : "off")
        o.add("merge", r.merge ? "on" : "off")
        o.add("reclaimers", r.settings.reclaimers)
        o.add("negative_max", r.settings.negativeMax)
        o.add("kernel_invalidate", r.settings.kernelInvalidate ? "on" : "off")
        o.add("high_watermark_bytes", r.highWatermarkBytes)
        o.add("low_watermark_bytes", r.lowWatermarkBytes)
        o.add("accounted_slab_bytes", r.slabBytes)
        o.add("direct_reclaims", r.directReclaims)
        o.add("direct_waits", r.directWaits)
        o.add("direct_give_ups", r.directGiveUps)
        o.add("background_runs", r.backgroundRuns)
        o.add("writeback_batches", r.writebackBatches)
        o.add("writeback_errors", r.writebackErrors)
        o.add("negative_dentries", r.negativeDentries)
        o.add("negative_trimmed", r.negativeTrimmed)
        root.add("reclaim", raw: o.render(indent: 1))
        var shrinkers = JSONObject()
        for s in r.shrinkers {
            var x = JSONObject()
            for (k, v) in shrinkerFields(s) { x.add(k, raw: v) }
            shrinkers.add(s.name, raw: x.render(indent: 2))
        }
        root.add("shrinkers", raw: shrinkers.render(indent: 1))
    }

    static func reclaimText(_ r: ReclaimStatistics) -> String {
        let s = r.settings
        var out = "\nreclaim: budget " + (s.budgetAuto ? "auto (\(r.pressureSource), \(r.pressureEvents) events)" : r.budgetBytes == 0 ? "none" : humanBytes(UInt64(r.budgetBytes))
            + " (high \(humanBytes(UInt64(r.highWatermarkBytes))), low \(humanBytes(UInt64(r.lowWatermarkBytes))))")
        out += ", policy \(s.policy.rawValue), dirty \(s.dirty.rawValue), segregate \(s.segregate ? "on" : "off")"
        out += ", merge \(r.merge ? "on" : "off"), reclaimers \(s.reclaimers)"
        out += ", negative_max \(s.negativeMax == 0 ? "off" : String(s.negativeMax))"
        out += ", kernel_invalidate \(s.kernelInvalidate ? "on" : "off")\n"
        out += "  direct reclaims \(r.directReclaims) (waits \(r.directWaits), gave up \(r.directGiveUps)), background runs \(r.backgroundRuns)"
        out += ", writeback batches \(r.writebackBatches), negative dentries \(r.negativeDentries) (trimmed \(r.negativeTrimmed))\n"
        out += pad("shrinker", 10, left: true) + pad("scanned", 11) + pad("freed", 10) + pad("pages", 8) + pad("pinned", 9)
            + pad("dirty", 8) + pad("ref", 9) + pad("wback", 7) + pad("busy", 6) + pad("reloc", 7) + pad("avg us", 9)
            + pad("max us", 10) + pad("limit", 11) + "\n"
        for x in r.shrinkers {
            out += "  " + pad(x.name, 8, left: true) + pad("\(x.scanned)", 11) + pad("\(x.freedObjects)", 10)
                + pad("\(x.freedPages)", 8) + pad("\(x.skippedPinned)", 9) + pad("\(x.skippedDirty)", 8)
                + pad("\(x.skippedReferenced)", 9) + pad("\(x.writeback)", 7) + pad("\(x.lockBusy)", 6)
                + pad("\(x.relocated)", 7) + pad(fixed(x.scanMicrosecondsAverage, 1), 9) + pad(fixed(x.scanMicrosecondsMax, 1), 10)
                + pad(x.limitBytes == 0 ? "-" : humanBytes(UInt64(x.limitBytes)), 11) + "\n"
        }
        return out
    }

    static func reclaimMetrics(_ r: ReclaimStatistics) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, v) in samples { out += name + (labels.isEmpty ? "" : "{\(labels)}") + " " + v + "\n" }
        }
        family("metafs_budget_bytes", "gauge", "Memory budget of the caches' slabs, in bytes (0: none).", [("", "\(r.budgetBytes)")])
        family("metafs_reclaim_direct_total", "counter", "Direct reclaims by allocating threads.", [("", "\(r.directReclaims)")])
        family("metafs_reclaim_background_runs_total", "counter", "Background reclaim runs.", [("", "\(r.backgroundRuns)")])
        family("metafs_reclaim_writeback_batches_total", "counter", "Writeback batches reclaim asked for.", [("", "\(r.writebackBatches)")])
        let counters: [(String, String, (ShrinkerStatistics) -> String)] = [
            ("scanned_total", "Objects the shrinker looked at.", { "\($0.scanned)" }),
            ("freed_objects_total", "Objects the shrinker freed.", { "\($0.freedObjects)" }),
            ("freed_pages_total", "Slab pages the shrinker's frees emptied.", { "\($0.freedPages)" }),
            ("skipped_pinned_total", "Objects skipped because pinned.", { "\($0.skippedPinned)" }),
            ("skipped_dirty_total", "Objects skipped because dirty.", { "\($0.skippedDirty)" }),
            ("skipped_referenced_total", "Referenced objects given a second chance.", { "\($0.skippedReferenced)" }),
            ("writeback_total", "Dirty objects sent to writeback.", { "\($0.writeback)" }),
            ("lock_busy_total", "Shard locks found busy (try-lock failed).", { "\($0.lockBusy)" }),
            ("relocated_total", "Dentries moved between leaf and directory slabs.", { "\($0.relocated)" }),
            ("scans_total", "Scans run.", { "\($0.scans)" }),
        ]
        for (key, help, value) in counters {
            family("metafs_shrinker_" + key, "counter", help, r.shrinkers.map { ("shrinker=\"\(labelValue($0.name))\"", value($0)) })
        }
        family("metafs_shrinker_scan_microseconds_total", "counter", "Time spent scanning, in microseconds.",
               r.shrinkers.map { ("shrinker=\"\(labelValue($0.name))\"", fixed($0.scanMicrosecondsTotal, 3)) })
        family("metafs_shrinker_scan_microseconds_max", "gauge", "Longest scan, in microseconds.",
               r.shrinkers.map { ("shrinker=\"\(labelValue($0.name))\"", fixed($0.scanMicrosecondsMax, 3)) })
        return out
    }
}
