// The pure parts of `metafs compare` (issue 5, item 2): reclaim settings, the samples of stats.json
// taken during a run and their CSV form, and the per-workload table's arithmetic. No file system
// access here: the CLI (Tools/metafs/Compare.swift) mounts, runs, samples and writes; these types
// are unit-tested with synthetic samples.

// MARK: - Settings

/// One reclaim setting to compare: mount options of issue 4 (`--policy NAME --segregate on|off
/// --merge on|off --dirty skip|writeback --kernel-invalidate on|off`), or `default` (no option:
/// the build's own behaviour).
public struct CompareSetting: Sendable, Equatable {
    /// Shown in tables, charts and file names.
    public var label: String
    /// (option, value) in the order given, e.g. [("policy", "page"), ("segregate", "on")].
    public var options: [(String, String)]

    public static let keys = ["policy", "segregate", "merge", "dirty", "kernel-invalidate"]

    public static func == (a: CompareSetting, b: CompareSetting) -> Bool {
        a.label == b.label && a.options.count == b.options.count && zip(a.options, b.options).allSatisfy { $0 == $1 }
    }

    /// `default`, or `[LABEL:]key=value[,key=value...]` with keys policy, segregate (on/off),
    /// merge (on/off), dirty (skip/writeback), kernel-invalidate (on/off). The label defaults to the policy followed by the
    /// other options ("page,segregate=on").
    public static func parse(_ spec: String) throws(ControlCommandError) -> CompareSetting {
        var text = Substring(spec.trimmingSpaces)
        var label: String?
        if let colon = text.firstIndex(of: ":") {
            label = String(text[..<colon])
            text = text[text.index(after: colon)...]
            guard let l = label, !l.isEmpty, l.allSatisfy({ $0.isLetter || $0.isNumber || "_-.+=,".contains($0) }) else {
                throw ControlCommandError("setting '\(spec)': a label is letters, digits and _ - . + = , only")
            }
        }
        if text == "default" { return CompareSetting(label: label ?? "default", options: []) }
        guard !text.isEmpty else { throw ControlCommandError("empty setting (use 'default' for the mount's defaults)") }
        var options: [(String, String)] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, !kv[0].isEmpty, !kv[1].isEmpty else {
                throw ControlCommandError("setting '\(spec)': '\(part)' is not key=value")
            }
            let key = String(kv[0]), value = String(kv[1])
            guard keys.contains(key) else {
                throw ControlCommandError("setting '\(spec)': unknown key '\(key)' (known: \(keys.joined(separator: ", ")))")
            }
            guard !options.contains(where: { $0.0 == key }) else { throw ControlCommandError("setting '\(spec)': '\(key)' given twice") }
            switch key {
            case "segregate", "merge", "kernel-invalidate":
                _ = try ControlArgument.flag(Substring(value))
            case "dirty":
                _ = try ControlArgument.choice(Substring(value), ["skip", "writeback"])
            default:
                guard value.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F }) else {
                    throw ControlCommandError("setting '\(spec)': policy '\(value)' is not a word (a-z, 0-9, - and _)")
                }
            }
            options.append((key, value))
        }
        let auto = options.map { $0.0 == "policy" ? $0.1 : "\($0.0)=\($0.1)" }.joined(separator: ",")
        return CompareSetting(label: label ?? auto, options: options)
    }

    /// The mount options: ["--policy", "page", "--segregate", "on"].
    public var mountArguments: [String] { options.flatMap { ["--\($0.0)", $0.1] } }

    /// The label as a file name (letters, digits, - _ . = + kept; others become _).
    public var fileName: String { Self.fileName(label) }

    public static func fileName(_ s: String) -> String {
        String(s.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.=+".contains($0)) ? $0 : "_" })
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" || s.last == "\n" { s = s.dropLast() }
        return String(s)
    }
}

// MARK: - Samples

/// One sample of stats.json during a run, reduced to the totals the report needs.
public struct CompareSample: Sendable, Equatable {
    public var setting: String
    public var workload: String
    /// The workload's phase (or mount, shrink, settle) when the sample was taken.
    public var phase: String
    /// Seconds since the run started (the mount was ready).
    public var t: Double
    /// Workload operations done so far.
    public var workloadOps: UInt64 = 0
    public var slabBytes: UInt64 = 0
    public var cacheBytes: UInt64 = 0
    public var rssBytes: UInt64 = 0
    /// Anonymous RSS (slabs, tables, heap: without the store mapping), when the build reports it.
    public var rssAnonBytes: UInt64?
    public var budgetBytes: UInt64?
    public var activeObjects: UInt64 = 0
    public var totalObjects: UInt64 = 0
    public var activeBytes: UInt64 = 0
    public var totalBytes: UInt64 = 0
    public var activeSlabs: UInt64 = 0
    public var totalSlabs: UInt64 = 0
    public var hits: UInt64 = 0
    public var misses: UInt64 = 0
    public var negative: UInt64 = 0
    public var dirty: UInt64 = 0
    public var pinned: UInt64 = 0
    public var commits: UInt64 = 0
    // Shrinker counters summed over the shrinkers (0 when the build has none).
    public var scanned: UInt64 = 0
    public var freedObjects: UInt64 = 0
    public var freedPages: UInt64 = 0
    public var skippedPinned: UInt64 = 0
    public var skippedDirty: UInt64 = 0
    public var skippedReferenced: UInt64 = 0
    public var writeback: UInt64 = 0
    public var lockBusy: UInt64 = 0
    public var relocated: UInt64 = 0
    /// The largest scan_us_max of the shrinkers.
    public var scanMicrosecondsMax: Double = 0
    /// Total scan time, when the shrinkers report it (see StatsSnapshot.reclaimMicroseconds).
    public var reclaimMicroseconds: Double?
    /// Whether stats.json had shrinker counters at all.
    public var hasShrinkers = false

    public init(setting: String, workload: String, phase: String, t: Double) {
        self.setting = setting; self.workload = workload; self.phase = phase; self.t = t
    }

    public init(setting: String, workload: String, phase: String, t: Double, workloadOps: UInt64, stats s: StatsSnapshot) {
        self.init(setting: setting, workload: workload, phase: phase, t: t)
        self.workloadOps = workloadOps
        slabBytes = s.slabBytes; cacheBytes = s.cacheBytes; rssBytes = s.rssBytes; rssAnonBytes = s.rssAnonBytes; budgetBytes = s.budgetBytes
        activeObjects = s.activeObjects; totalObjects = s.totalObjects; activeBytes = s.activeBytes; totalBytes = s.totalBytes
        activeSlabs = s.activeSlabs; totalSlabs = s.totalSlabs; hits = s.hits; misses = s.misses
        negative = s.negative; dirty = s.dirty; pinned = s.pinned; commits = s.commits
        func total(_ k: String) -> UInt64 { UInt64(max(0, s.shrinkerTotal(k)).rounded()) }
        scanned = total("scanned"); freedObjects = total("freed_objects"); freedPages = total("freed_pages")
        skippedPinned = total("skipped_pinned"); skippedDirty = total("skipped_dirty"); skippedReferenced = total("skipped_referenced")
        writeback = total("writeback"); lockBusy = total("lock_busy"); relocated = total("relocated")
        scanMicrosecondsMax = s.shrinkerMax("scan_us_max")
        reclaimMicroseconds = s.reclaimMicroseconds
        hasShrinkers = !s.shrinkers.isEmpty
    }
}

/// samples.csv: one header line, then one line per sample (RFC 4180 quoting).
public enum SampleCSV {
    public struct ParseError: Error, CustomStringConvertible, Equatable, Sendable {
        public var message: String
        public var description: String { message }
    }

    typealias Column = (name: String, get: (CompareSample) -> String, set: (inout CompareSample, String) throws(ParseError) -> Void)

    static func u64(_ name: String, _ kp: WritableKeyPath<CompareSample, UInt64>) -> Column {
        (name, { "\($0[keyPath: kp])" }, { (s: inout CompareSample, v: String) throws(ParseError) in
            guard let x = UInt64(v) else { throw ParseError(message: "\(name): '\(v)' is not a count") }
            s[keyPath: kp] = x
        })
    }

    /// A count that may be unknown (an empty field).
    static func optional(_ name: String, _ kp: WritableKeyPath<CompareSample, UInt64?>) -> Column {
        (name, { $0[keyPath: kp].map { "\($0)" } ?? "" }, { (s: inout CompareSample, v: String) throws(ParseError) in
            if v.isEmpty { s[keyPath: kp] = nil; return }
            guard let x = UInt64(v) else { throw ParseError(message: "\(name): '\(v)' is not a count") }
            s[keyPath: kp] = x
        })
    }

    static func text(_ name: String, _ kp: WritableKeyPath<CompareSample, String>) -> Column {
        (name, { $0[keyPath: kp] }, { (s: inout CompareSample, v: String) throws(ParseError) in s[keyPath: kp] = v })
    }

    static func real(_ v: Double) -> String { Report.fixed(v, 3) }

    static func double(_ name: String, _ v: String) throws(ParseError) -> Double {
        guard let x = Double(v), x.isFinite else { throw ParseError(message: "\(name): '\(v)' is not a number") }
        return x
    }

    static var columns: [Column] { [
        text("setting", \.setting), text("workload", \.workload), text("phase", \.phase),
        ("t", { real($0.t) }, { (s: inout CompareSample, v: String) throws(ParseError) in s.t = try double("t", v) }),
        u64("workload_ops", \.workloadOps), u64("slab_bytes", \.slabBytes), u64("cache_bytes", \.cacheBytes), u64("rss_bytes", \.rssBytes),
        optional("rss_anon_bytes", \.rssAnonBytes), optional("budget_bytes", \.budgetBytes),
        u64("active_objects", \.activeObjects), u64("total_objects", \.totalObjects), u64("active_bytes", \.activeBytes),
        u64("total_bytes", \.totalBytes), u64("active_slabs", \.activeSlabs), u64("total_slabs", \.totalSlabs),
        u64("hits", \.hits), u64("misses", \.misses), u64("negative", \.negative), u64("dirty", \.dirty), u64("pinned", \.pinned),
        u64("commits", \.commits),
        ("shrinkers", { $0.hasShrinkers ? "1" : "0" }, { (s: inout CompareSample, v: String) throws(ParseError) in
            guard v == "0" || v == "1" else { throw ParseError(message: "shrinkers: '\(v)' is not 0 or 1") }
            s.hasShrinkers = v == "1"
        }),
        u64("scanned", \.scanned), u64("freed_objects", \.freedObjects), u64("freed_pages", \.freedPages),
        u64("skipped_pinned", \.skippedPinned), u64("skipped_dirty", \.skippedDirty), u64("skipped_referenced", \.skippedReferenced),
        u64("writeback", \.writeback), u64("lock_busy", \.lockBusy), u64("relocated", \.relocated),
        ("scan_us_max", { real($0.scanMicrosecondsMax) }, { (s: inout CompareSample, v: String) throws(ParseError) in
            s.scanMicrosecondsMax = try double("scan_us_max", v) }),
        ("reclaim_us", { $0.reclaimMicroseconds.map(real) ?? "" }, { (s: inout CompareSample, v: String) throws(ParseError) in
            s.reclaimMicroseconds = v.isEmpty ? nil : try double("reclaim_us", v) }),
    ] }

    public static var header: String { columns.map(\.name).joined(separator: ",") }

    public static func field(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingAll("\"", with: "\"\"") + "\""
    }

    public static func line(_ s: CompareSample) -> String { line(s, columns) }

    static func line(_ s: CompareSample, _ cs: [Column]) -> String { cs.map { field($0.get(s)) }.joined(separator: ",") }

    public static func render(_ samples: [CompareSample]) -> String {
        let cs = columns
        return ([header] + samples.map { line($0, cs) }).joined(separator: "\n") + "\n"
    }

    /// Splits CSV text into records of fields (quoted fields may hold commas, quotes, newlines).
    public static func records(_ text: String) throws(ParseError) -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var quoted = false, wasQuoted = false
        var it = Array(text.unicodeScalars)[...]
        var line = 1
        while let c = it.popFirst() {
            if quoted {
                if c == "\"" {
                    if it.first == "\"" { field.unicodeScalars.append("\""); it = it.dropFirst() } else { quoted = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"":
                guard field.isEmpty && !wasQuoted else { throw ParseError(message: "line \(line): a quote inside an unquoted field") }
                quoted = true; wasQuoted = true
            case ",":
                record.append(field); field = ""; wasQuoted = false
            case "\r":
                if it.first != "\n" { throw ParseError(message: "line \(line): a bare carriage return") }
            case "\n":
                record.append(field); records.append(record)
                record = []; field = ""; wasQuoted = false; line += 1
            default:
                if wasQuoted { throw ParseError(message: "line \(line): text after a closing quote") }
                field.unicodeScalars.append(c)
            }
        }
        if quoted { throw ParseError(message: "line \(line): an unterminated quote") }
        if !field.isEmpty || !record.isEmpty || wasQuoted { record.append(field); records.append(record) }
        return records
    }

    /// Parses samples.csv. Columns are found by name (order free, unknown ones ignored); every
    /// known column must be present, and every line must have as many fields as the header.
    public static func parse(_ text: String) throws(ParseError) -> [CompareSample] {
        let rows = try records(text)
        guard let head = rows.first else { throw ParseError(message: "empty file: no header") }
        var index: [Int] = []
        let columns = columns
        for c in columns {
            guard let i = head.firstIndex(of: c.name) else { throw ParseError(message: "header: no column '\(c.name)'") }
            index.append(i)
        }
        var out: [CompareSample] = []
        for (n, r) in rows.dropFirst().enumerated() {
            if r == [""] { continue }  // a blank line
            guard r.count == head.count else {
                throw ParseError(message: "record \(n + 1): \(r.count) fields, the header has \(head.count)")
            }
            var s = CompareSample(setting: "", workload: "", phase: "", t: 0)
            for (c, i) in zip(columns, index) {
                do { try c.set(&s, r[i]) } catch { throw ParseError(message: "record \(n + 1): \(error.message)") }
            }
            out.append(s)
        }
        return out
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}

// MARK: - The table

/// What one (workload, setting) run produced besides its samples.
public struct CompareRun: Sendable {
    public var setting: String
    public var workload: String
    public var ops: UInt64
    public var seconds: Double
    public var errors: UInt64
    /// Wall time of the explicit `shrink` command (when the comparison asked for one).
    public var shrinkSeconds: Double?
    public var samples: [CompareSample]
    public init(setting: String, workload: String, ops: UInt64, seconds: Double, errors: UInt64 = 0,
                shrinkSeconds: Double? = nil, samples: [CompareSample]) {
        self.setting = setting; self.workload = workload; self.ops = ops; self.seconds = seconds; self.errors = errors
        self.shrinkSeconds = shrinkSeconds; self.samples = samples
    }
}

/// One line of a workload's table: what a setting did over the run (first to last sample).
public struct CompareRow: Sendable, Equatable {
    public var setting: String
    public var workload: String
    /// Workload operations per second.
    public var throughput: Double
    public var errors: UInt64
    /// hits / (hits + misses) over the run, in percent; nil without lookups.
    public var hitRate: Double?
    public var evictedObjects: UInt64
    public var pagesFreed: UInt64
    /// Objects evicted for each page given back; nil when no page was freed.
    public var evictedPerPage: Double?
    /// Live object bytes / object slot bytes at the last sample (after reclaim), in percent.
    public var slabUseAfter: Double?
    /// Time spent reclaiming, in milliseconds: the shrinkers' scan time when they report it,
    /// else the wall time of the explicit shrink; nil when neither is known.
    public var reclaimMilliseconds: Double?
    public var writebacks: UInt64
    public var relocations: UInt64
    public var peakSlabBytes: UInt64
    public var endSlabBytes: UInt64
    public var peakRSSBytes: UInt64
    /// Peak anonymous RSS (without the store mapping), when reported.
    public var peakAnonRSSBytes: UInt64?
    public var budgetBytes: UInt64?
    /// Whether stats.json had shrinker counters (otherwise the reclaim columns mean nothing).
    public var hasShrinkers: Bool

    /// The arithmetic. Counters are taken as the change from the first to the last sample by time
    /// (a counter that went down counts as 0); levels (slab use, slab bytes) at the last sample or
    /// their peak over all samples.
    public static func compute(_ run: CompareRun) -> CompareRow {
        let s = run.samples.enumerated().sorted { $0.element.t != $1.element.t ? $0.element.t < $1.element.t : $0.offset < $1.offset }.map(\.element)
        let first = s.first ?? CompareSample(setting: run.setting, workload: run.workload, phase: "", t: 0)
        let last = s.last ?? first
        func delta(_ kp: KeyPath<CompareSample, UInt64>) -> UInt64 {
            last[keyPath: kp] >= first[keyPath: kp] ? last[keyPath: kp] - first[keyPath: kp] : 0
        }
        let hits = delta(\.hits), misses = delta(\.misses)
        let evicted = delta(\.freedObjects), pages = delta(\.freedPages)
        var reclaimMs: Double?
        if let a = last.reclaimMicroseconds {
            reclaimMs = max(0, a - (first.reclaimMicroseconds ?? 0)) / 1000
        } else if let shrink = run.shrinkSeconds {
            reclaimMs = shrink * 1000
        }
        return CompareRow(
            setting: run.setting, workload: run.workload,
            throughput: run.seconds > 0 ? Double(run.ops) / run.seconds : 0,
            errors: run.errors,
            hitRate: hits + misses == 0 ? nil : Double(hits) * 100 / Double(hits + misses),
            evictedObjects: evicted, pagesFreed: pages,
            evictedPerPage: pages == 0 ? nil : Double(evicted) / Double(pages),
            slabUseAfter: last.totalBytes == 0 ? nil : Double(last.activeBytes) * 100 / Double(last.totalBytes),
            reclaimMilliseconds: reclaimMs,
            writebacks: delta(\.writeback), relocations: delta(\.relocated),
            peakSlabBytes: s.map(\.slabBytes).max() ?? 0, endSlabBytes: last.slabBytes,
            peakRSSBytes: s.map(\.rssBytes).max() ?? 0, peakAnonRSSBytes: s.compactMap(\.rssAnonBytes).max(),
            budgetBytes: last.budgetBytes,
            hasShrinkers: s.contains { $0.hasShrinkers })
    }
}

public enum CompareTable {
    static let titles = ["setting", "ops/s", "hit %", "evicted", "pages freed", "evicted/page", "slab use after",
                         "reclaim ms", "writebacks", "relocations", "slab peak MiB", "slab end MiB", "errors"]

    static func cells(_ r: CompareRow) -> [String] {
        let noReclaim = !r.hasShrinkers
        func counter(_ v: UInt64) -> String { noReclaim ? "-" : "\(v)" }
        return [
            r.setting, "\(Int(r.throughput.rounded()))", r.hitRate.map { Report.fixed($0, 1) } ?? "-",
            counter(r.evictedObjects), counter(r.pagesFreed), r.evictedPerPage.map { Report.fixed($0, 2) } ?? "-",
            r.slabUseAfter.map { Report.fixed($0, 1) + "%" } ?? "-", r.reclaimMilliseconds.map { Report.fixed($0, 1) } ?? "-",
            counter(r.writebacks), counter(r.relocations), Report.mebibytes(r.peakSlabBytes), Report.mebibytes(r.endSlabBytes), "\(r.errors)",
        ]
    }

    /// The table of one workload as aligned text.
    public static func text(workload: String, _ rows: [CompareRow]) -> String {
        let body = rows.map(cells)
        let widths = titles.indices.map { i in max(titles[i].count, body.map { $0[i].count }.max() ?? 0) }
        func line(_ c: [String]) -> String {
            c.indices.map { i in Report.pad(c[i], widths[i], left: i == 0) }.joined(separator: "  ")
        }
        var out = "\(workload)\n" + line(titles) + "\n"
        for b in body { out += line(b) + "\n" }
        if rows.contains(where: { !$0.hasShrinkers }) {
            out += "(- : stats.json has no shrinker counters in this build)\n"
        }
        return out
    }

    /// The table of one workload in Markdown.
    public static func markdown(workload: String, _ rows: [CompareRow]) -> String {
        var out = "| " + titles.joined(separator: " | ") + " |\n"
        out += "|" + titles.indices.map { $0 == 0 ? " --- |" : " ---: |" }.joined() + "\n"
        for r in rows { out += "| " + cells(r).joined(separator: " | ") + " |\n" }
        return out
    }

    public static let resultsHeader = "workload,setting,ops_per_s,errors,hit_rate_pct,evicted_objects,pages_freed,evicted_per_page,slab_use_after_pct,reclaim_ms,writebacks,relocations,slab_peak_bytes,slab_end_bytes,rss_peak_bytes,rss_anon_peak_bytes,budget_bytes,shrinkers"

    /// results.csv: one line per (workload, setting); empty fields where a figure is unknown.
    public static func resultsCSV(_ rows: [CompareRow]) -> String {
        func opt(_ v: Double?, _ d: Int) -> String { v.map { Report.fixed($0, d) } ?? "" }
        var out = resultsHeader + "\n"
        for r in rows {
            out += [SampleCSV.field(r.workload), SampleCSV.field(r.setting), Report.fixed(r.throughput, 1), "\(r.errors)",
                    opt(r.hitRate, 2), "\(r.evictedObjects)", "\(r.pagesFreed)", opt(r.evictedPerPage, 3), opt(r.slabUseAfter, 2),
                    opt(r.reclaimMilliseconds, 3), "\(r.writebacks)", "\(r.relocations)", "\(r.peakSlabBytes)", "\(r.endSlabBytes)",
                    "\(r.peakRSSBytes)", r.peakAnonRSSBytes.map { "\($0)" } ?? "", r.budgetBytes.map { "\($0)" } ?? "", r.hasShrinkers ? "1" : "0"].joined(separator: ",") + "\n"
        }
        return out
    }
}
