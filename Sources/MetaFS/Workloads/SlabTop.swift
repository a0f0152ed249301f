// The frame of `metafs stats MOUNTPOINT --watch`: slabtop's summary and table, built from
// stats.json, then the shrinker counters when the build reports them. A pure function of two
// snapshots (the previous one gives the rates), so it is unit-tested.

public enum SlabTop {
    /// The column headers of the shrinker table, for issue 4's keys.
    static let shrinkerColumns: [(key: String, title: String)] = [
        ("scanned", "SCANNED"), ("freed_objects", "FREED_OBJ"), ("freed_pages", "FREED_PG"),
        ("skipped_pinned", "SKIP_PIN"), ("skipped_dirty", "SKIP_DIRTY"), ("skipped_referenced", "SKIP_REF"),
        ("writeback", "WRITEBACK"), ("lock_busy", "LOCK_BUSY"), ("relocated", "RELOCATED"),
        ("scan_us_avg", "SCAN_US_AVG"), ("scan_us_max", "SCAN_US_MAX"),
    ]

    static func percent(_ a: UInt64, _ b: UInt64) -> String { b == 0 ? "0.0%" : Report.fixed(Double(a) * 100 / Double(b), 1) + "%" }
    static func k2(_ bytes: UInt64) -> String { Report.fixed(Double(bytes) / 1024, 2) + "K" }

    /// One frame. `previous` (taken `seconds` earlier) gives the per-second rates; `width` cuts
    /// long lines (a terminal's width).
    public static func render(_ s: StatsSnapshot, previous: StatsSnapshot? = nil, seconds: Double = 0,
                              title: String = "", width: Int? = nil) -> String {
        var lines: [String] = []
        if !title.isEmpty { lines.append(" " + title) }
        let used = s.caches.filter { $0.activeObjects > 0 }.count
        lines.append(" Active / Total Objects (% used)    : \(s.activeObjects) / \(s.totalObjects) (\(percent(s.activeObjects, s.totalObjects)))")
        lines.append(" Active / Total Slabs (% used)      : \(s.activeSlabs) / \(s.totalSlabs) (\(percent(s.activeSlabs, s.totalSlabs)))")
        lines.append(" Active / Total Caches (% used)     : \(used) / \(s.caches.count) (\(percent(UInt64(used), UInt64(s.caches.count))))")
        lines.append(" Active / Total Size (% used)       : \(k2(s.activeBytes)) / \(k2(s.totalBytes)) (\(percent(s.activeBytes, s.totalBytes)))")
        let sizes = s.caches.map(\.objectSize).filter { $0 > 0 }
        let avg = s.totalObjects == 0 ? 0 : s.totalBytes / s.totalObjects
        lines.append(" Minimum / Average / Maximum Object : \(k2(sizes.min() ?? 0)) / \(k2(avg)) / \(k2(sizes.max() ?? 0))")
        let budget = s.budgetBytes.map { $0 == 0 ? "none" : ControlRendering.humanBytes($0) } ?? "-"
        lines.append(" Slab / Caches / RSS / Budget       : \(ControlRendering.humanBytes(s.slabBytes)) / \(ControlRendering.humanBytes(s.cacheBytes)) / \(ControlRendering.humanBytes(s.rssBytes)) / \(budget)")
        if let anon = s.rssAnonBytes, let file = s.rssFileBytes {
            lines.append(" RSS anonymous / store mapping      : \(ControlRendering.humanBytes(anon)) / \(ControlRendering.humanBytes(file))")
        }
        lines.append(" Negative / Dirty / Pinned objects  : \(s.negative) / \(s.dirty) / \(s.pinned)")
        if let p = previous, seconds > 0 {
            func rate(_ a: UInt64, _ b: UInt64) -> String { "\(Int((Double(a &- min(a, b)) / seconds).rounded()))" }
            let dh = s.hits &- min(s.hits, p.hits), dm = s.misses &- min(s.misses, p.misses)
            let hit = dh + dm == 0 ? "-" : Report.fixed(Double(dh) * 100 / Double(dh + dm), 1) + "%"
            lines.append(" Lookups/s / Hit rate / FUSE ops/s  : \(rate(s.hits &+ s.misses, p.hits &+ p.misses)) / \(hit) / \(rate(s.fuseRequests, p.fuseRequests))")
        } else {
            let total = s.hits + s.misses
            lines.append(" Lookups / Hit rate / FUSE ops      : \(total) / \(total == 0 ? "-" : percent(s.hits, total)) / \(s.fuseRequests)")
        }
        lines.append("")
        lines.append("  OBJS ACTIVE  USE OBJ SIZE  SLABS OBJ/SLAB CACHE SIZE NAME")
        let sorted = s.caches.enumerated().sorted { a, b in
            a.element.totalObjects != b.element.totalObjects ? a.element.totalObjects > b.element.totalObjects : a.offset < b.offset
        }.map(\.element)
        for c in sorted {
            let use = c.totalObjects == 0 ? 0 : Int((Double(c.activeObjects) * 100 / Double(c.totalObjects)).rounded(.down))
            let cacheSize = (c.slabBytes > 0 ? c.slabBytes : c.totalSlabs * c.pagesPerSlab * 4096) / 1024
            lines.append(Report.pad("\(c.totalObjects)", 6) + " " + Report.pad("\(c.activeObjects)", 6) + " " + Report.pad("\(use)%", 4)
                         + " " + Report.pad(k2(c.objectSize), 8) + " " + Report.pad("\(c.totalSlabs)", 6) + " " + Report.pad("\(c.objectsPerSlab)", 8)
                         + " " + Report.pad("\(cacheSize)K", 10) + " " + c.name)
        }
        if !s.shrinkers.isEmpty {
            lines.append("")
            let columns = shrinkerColumns.filter { col in s.shrinkers.contains { $0[col.key] != nil } }
            let nameWidth = max(8, s.shrinkers.map(\.name.count).max() ?? 0)
            lines.append(" " + Report.pad("SHRINKER", nameWidth, left: true) + columns.map { " " + Report.pad($0.title, max(9, $0.title.count)) }.joined())
            for sh in s.shrinkers {
                let cells = columns.map { col -> String in
                    let v = sh[col.key]
                    let text = v.map { col.key == "scan_us_avg" ? Report.fixed($0, 1) : "\(Int($0.rounded()))" } ?? "-"
                    return " " + Report.pad(text, max(9, col.title.count))
                }
                lines.append(" " + Report.pad(sh.name, nameWidth, left: true) + cells.joined())
            }
        } else {
            lines.append("")
            lines.append(" (no shrinker counters in stats.json)")
        }
        if let width, width > 0 {
            lines = lines.map { $0.count > width ? String($0.prefix(width)) : $0 }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
