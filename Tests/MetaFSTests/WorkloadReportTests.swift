import Foundation
import Glibc
import MetaCache
@testable import MetaFS
import Testing

// Unit tests of the workload tooling's pure parts (no mount): stats.json parsing, the slabtop
// view, compare's settings, samples.csv, the table arithmetic and the gnuplot scripts.

/// A stats.json as metafs renders it today, from a synthetic snapshot.
func renderedStatsJSON(dentryActive: Int = 460, dentryTotal: Int = 920, inodeActive: Int = 52, hits: UInt64 = 900, misses: UInt64 = 100) -> String {
    let caches = [
        CacheStatistics(name: "metafs_dentry", activeObjects: dentryActive, totalObjects: dentryTotal, objectSize: 88, objectsPerSlab: 46,
                        pagesPerSlab: 1, activeSlabs: 20, totalSlabs: 20, hits: hits, misses: misses, allocations: 1000, frees: 40,
                        negative: 300, dirty: 7, pinned: 3, slabBytes: 20 * 4096),
        CacheStatistics(name: "metafs_inode", activeObjects: inodeActive, totalObjects: 104, objectSize: 152, objectsPerSlab: 26,
                        pagesPerSlab: 1, activeSlabs: 4, totalSlabs: 4, hits: 10, misses: 2, slabBytes: 4 * 4096),
        CacheStatistics(name: "metafs_name-64", objectSize: 64, objectsPerSlab: 64, pagesPerSlab: 1),
    ]
    let st = FileSystemStatistics(caches: caches, cacheBytes: 200_000, storeBytes: 1 << 30, storeUsedBytes: 1 << 20, storeBlocks: 262_144,
                                  storeFreeBlocks: 262_000, storeInodes: 65_536, storeFreeInodes: 65_000, commits: 12, committedObjects: 345,
                                  knownInodes: 17, openFiles: 2, rssBytes: 50 << 20,
                                  rssAnonymousBytes: 30 << 20, rssFileBytes: 20 << 20)
    let fuse = [FuseStatistics.Snapshot(operation: .lookup, count: 1000, errors: 10, bytes: 0),
                FuseStatistics.Snapshot(operation: .read, count: 5, errors: 0, bytes: 4096)]
    return ControlRendering.json(ControlSnapshot(statistics: st, fuse: fuse, uptimeSeconds: 12.5))
}

/// stats.json with issue 4's additions: budget_bytes and per-shrinker counters.
let statsWithShrinkers = """
    {"version": 1, "uptime_seconds": 3.5, "slab_bytes": 8192, "cache_bytes": 10000, "rss_bytes": 1048576, "budget_bytes": 67108864,
     "caches": [{"name": "metafs_dentry", "active_objects": 10, "total_objects": 46, "object_size": 88, "objects_per_slab": 46,
                 "pages_per_slab": 1, "active_slabs": 1, "total_slabs": 1, "slab_bytes": 4096}],
     "shrinkers": {"dentry": {"scanned": 100, "freed_objects": 80, "freed_pages": 2, "skipped_pinned": 5, "skipped_dirty": 4,
                              "skipped_referenced": 11, "writeback": 0, "lock_busy": 1, "relocated": 0, "scan_us_avg": 12.5,
                              "scan_us_max": 40, "scans": 4},
                   "extent": {"scanned": 10, "freed_objects": 9, "freed_pages": 1, "skipped_pinned": 0, "skipped_dirty": 1,
                              "skipped_referenced": 0, "writeback": 3, "lock_busy": 0, "relocated": 2, "scan_us_avg": 2,
                              "scan_us_max": 7, "scan_us_total": 30}},
     "store": {"commits": 3}, "fuse": {"lookup": {"count": 5, "errors": 0}}}
    """

@Suite struct WorkloadJSONTests {
    @Test func parsesWhatMetafsRenders() throws {
        let s = try StatsSnapshot.parse(renderedStatsJSON())
        #expect(s.caches.map(\.name) == ["metafs_dentry", "metafs_inode", "metafs_name-64"])
        #expect(s.slabBytes == 24 * 4096)
        #expect(s.rssBytes == 50 << 20 && s.rssAnonBytes == 30 << 20 && s.rssFileBytes == 20 << 20)
        #expect(s.cacheBytes == 200_000)
        #expect(s.uptimeSeconds == 12.5)
        #expect(s.budgetBytes == nil)
        #expect(s.shrinkers.isEmpty)
        #expect(s.caches[0].activeObjects == 460 && s.caches[0].totalObjects == 920 && s.caches[0].negative == 300)
        #expect(s.activeObjects == 512 && s.totalObjects == 1024)
        #expect(s.hits == 910 && s.misses == 102)
        #expect(s.commits == 12 && s.knownInodes == 17 && s.openFiles == 2)
        #expect(s.fuseRequests == 1005 && s.fuseErrors == 10)
        #expect(s.reclaimMicroseconds == nil)
    }

    @Test func parsesShrinkerCountersInBothShapes() throws {
        let s = try StatsSnapshot.parse(statsWithShrinkers)
        #expect(s.budgetBytes == 64 << 20)
        #expect(s.shrinkers.map(\.name) == ["dentry", "extent"])
        #expect(s.shrinkerTotal("freed_objects") == 89)
        #expect(s.shrinkerTotal("freed_pages") == 3)
        #expect(s.shrinkerMax("scan_us_max") == 40)
        #expect(s.reclaimMicroseconds == 4 * 12.5 + 30)
        let array = """
            {"caches": [], "shrinkers": [{"name": "inode", "scanned": 7, "freed_pages": 1}, {"scanned": 1}]}
            """
        let a = try StatsSnapshot.parse(array)
        #expect(a.shrinkers.map(\.name) == ["inode", "shrinker1"])
        #expect(a.shrinkers[0]["scanned"] == 7 && a.shrinkers[0]["freed_objects"] == nil)
    }

    @Test func jsonValues() throws {
        let v = try JSONValue.parse(#"{"a": [1, -2.5e3, true, false, null], "s": "x\"\\\/\n\u00e9\ud83d\ude00", "big": 18446744073709551615}"#)
        #expect(v["a"]?.array?.count == 5)
        #expect(v["a"]?.array?[1].double == -2500)
        #expect(v["s"]?.string == "x\"\\/\n\u{e9}\u{1F600}")
        #expect(v["big"]?.uint64 == UInt64.max)
        #expect(v["missing"] == nil)
        #expect(try JSONValue.parse(" [ ] ") == .array([]))
        #expect(try JSONValue.parse("{}") == .object([]))
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\":}", "{\"a\" 1}", "tru", "\"abc", "{} x", "01x", "[\"\u{01}\"]", "\"\\q\"", "-", "{\"a\":1,}"])
    func rejectsMalformedJSON(_ text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(text) }
    }

    @Test func statsErrorsNameTheProblem() {
        #expect(throws: StatsSnapshot.ParseError.self) { try StatsSnapshot.parse("[]") }
        #expect(throws: StatsSnapshot.ParseError.self) { try StatsSnapshot.parse("{\"slab_bytes\": 1}") }
        #expect(throws: StatsSnapshot.ParseError.self) { try StatsSnapshot.parse("{\"caches\": [{\"active_objects\": 1}]}") }
    }
}

@Suite struct SlabTopTests {
    @Test func rendersSummaryTableAndNoShrinkers() throws {
        let s = try StatsSnapshot.parse(renderedStatsJSON())
        let frame = SlabTop.render(s, title: "metafs on /mnt")
        let lines = frame.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == " metafs on /mnt")
        #expect(lines.contains(" Active / Total Objects (% used)    : 512 / 1024 (50.0%)"))
        #expect(lines.contains(" Active / Total Slabs (% used)      : 24 / 24 (100.0%)"))
        #expect(lines.contains(" Active / Total Caches (% used)     : 2 / 3 (66.7%)"))
        #expect(lines.contains(" Negative / Dirty / Pinned objects  : 300 / 7 / 3"))
        #expect(lines.contains(" RSS anonymous / store mapping      : 30.0 MiB / 20.0 MiB"))
        let header = try #require(lines.firstIndex(of: "  OBJS ACTIVE  USE OBJ SIZE  SLABS OBJ/SLAB CACHE SIZE NAME"))
        // Sorted by objects, most first; slabtop's columns.
        #expect(lines[header + 1] == "   920    460  50%    0.09K     20       46        80K metafs_dentry")
        #expect(lines[header + 2] == "   104     52  50%    0.15K      4       26        16K metafs_inode")
        #expect(lines[header + 3].hasSuffix(" metafs_name-64"))
        #expect(frame.contains("(no shrinker counters in stats.json)"))
    }

    @Test func rendersShrinkersAndRates() throws {
        let before = try StatsSnapshot.parse(renderedStatsJSON(hits: 900, misses: 100))
        let after = try StatsSnapshot.parse(renderedStatsJSON(hits: 1800, misses: 200))
        let frame = SlabTop.render(after, previous: before, seconds: 2)
        #expect(frame.contains(" Lookups/s / Hit rate / FUSE ops/s  : 500 / 90.0% / 0"))
        let s = try StatsSnapshot.parse(statsWithShrinkers)
        let f = SlabTop.render(s)
        #expect(f.contains("SHRINKER"))
        for title in ["SCANNED", "FREED_OBJ", "FREED_PG", "SKIP_PIN", "SKIP_DIRTY", "SKIP_REF", "WRITEBACK", "LOCK_BUSY", "RELOCATED", "SCAN_US_AVG", "SCAN_US_MAX"] {
            #expect(f.contains(title))
        }
        let dentry = try #require(f.split(separator: "\n").first { $0.hasPrefix(" dentry") })
        #expect(dentry.split(separator: " ").map(String.init) == ["dentry", "100", "80", "2", "5", "4", "11", "0", "1", "0", "12.5", "40"])
        #expect(f.contains("Budget       : 8.0 KiB / 9.8 KiB / 1.0 MiB / 64.0 MiB") || f.contains("/ 64.0 MiB"))
    }

    @Test func cutsLinesToTheTerminalWidth() throws {
        let s = try StatsSnapshot.parse(statsWithShrinkers)
        let f = SlabTop.render(s, width: 40)
        #expect(f.split(separator: "\n").allSatisfy { $0.count <= 40 })
    }
}

@Suite struct CompareSettingTests {
    @Test func parsesSettings() throws {
        let d = try CompareSetting.parse("default")
        #expect(d.label == "default" && d.options.isEmpty && d.mountArguments.isEmpty)
        let p = try CompareSetting.parse("policy=page,segregate=on,dirty=writeback")
        #expect(p.label == "page,segregate=on,dirty=writeback")
        #expect(p.mountArguments == ["--policy", "page", "--segregate", "on", "--dirty", "writeback"])
        let l = try CompareSetting.parse("page-seg:policy=page,segregate=on")
        #expect(l.label == "page-seg" && l.fileName == "page-seg")
        #expect(try CompareSetting.parse("base:default").label == "base")
        #expect(try CompareSetting.parse("merge=off").label == "merge=off")
        #expect(try CompareSetting.parse("inval:kernel-invalidate=on").mountArguments == ["--kernel-invalidate", "on"])
        #expect(CompareSetting.fileName("a b/c'd") == "a_b_c_d")
    }

    @Test(arguments: ["", "policy", "policy=", "=lru", "color=red", "segregate=maybe", "merge=2", "dirty=flush",
                      "policy=Page", "policy=a b", "policy=lru,policy=page", ":policy=lru", "a/b:policy=lru", "policy=lru,,",
                      "kernel-invalidate=sometimes"])
    func rejectsBadSettings(_ spec: String) {
        #expect(throws: ControlCommandError.self) { try CompareSetting.parse(spec) }
    }
}

func sample(_ setting: String, _ t: Double, phase: String = "run", ops: UInt64 = 0, slab: UInt64 = 0, hits: UInt64 = 0, misses: UInt64 = 0,
            freedObjects: UInt64 = 0, freedPages: UInt64 = 0, active: UInt64 = 0, total: UInt64 = 0, writeback: UInt64 = 0,
            relocated: UInt64 = 0, reclaimUs: Double? = nil, shrinkers: Bool = true, workload: String = "fragment") -> CompareSample {
    var s = CompareSample(setting: setting, workload: workload, phase: phase, t: t)
    s.workloadOps = ops; s.slabBytes = slab; s.hits = hits; s.misses = misses; s.freedObjects = freedObjects; s.freedPages = freedPages
    s.activeBytes = active; s.totalBytes = total; s.activeObjects = active / 100; s.totalObjects = total / 100
    s.writeback = writeback; s.relocated = relocated; s.reclaimMicroseconds = reclaimUs; s.hasShrinkers = shrinkers
    s.rssBytes = slab + (10 << 20)
    return s
}

@Suite struct SampleCSVTests {
    @Test func roundTrips() throws {
        var a = sample("page,segregate=on", 0, phase: "mount", slab: 4096, reclaimUs: 12.5)
        a.budgetBytes = 64 << 20
        a.rssAnonBytes = 12345
        a.scanMicrosecondsMax = 40
        var b = sample("we\"ird, label", 1.25, phase: "hot", ops: 1234, slab: 1 << 20, hits: 10, misses: 2, freedObjects: 5, freedPages: 1,
                       active: 800, total: 1000, shrinkers: false)
        b.negative = 3; b.dirty = 4; b.pinned = 5; b.commits = 6; b.scanned = 7; b.skippedPinned = 8; b.skippedDirty = 9
        b.skippedReferenced = 10; b.lockBusy = 11; b.activeSlabs = 12; b.totalSlabs = 13; b.cacheBytes = 14
        let text = SampleCSV.render([a, b])
        #expect(text.hasPrefix(SampleCSV.header + "\n"))
        #expect(text.contains("\"we\"\"ird, label\""))
        let back = try SampleCSV.parse(text)
        #expect(back == [a, b])
    }

    @Test func columnsAreFoundByName() throws {
        let a = sample("lru", 2, ops: 9, slab: 8192, freedPages: 3)
        let rows = try SampleCSV.records(SampleCSV.render([a]))
        // Reverse the columns and add an unknown one: the parse does not care.
        let shuffled = rows.map { (["extra"] + $0.reversed()).joined(separator: ",") }.joined(separator: "\n") + "\n"
        #expect(try SampleCSV.parse(shuffled) == [a])
    }

    @Test func recordsHandleQuotesAndNewlines() throws {
        #expect(try SampleCSV.records("a,\"b,c\",\"d\"\"e\"\n\"multi\nline\",x\r\n") == [["a", "b,c", "d\"e"], ["multi\nline", "x"]])
        #expect(try SampleCSV.records("a,b") == [["a", "b"]])
        #expect(try SampleCSV.records("a,\n") == [["a", ""]])
    }

    @Test func rejectsBrokenFiles() throws {
        let good = SampleCSV.render([sample("lru", 1)])
        let lines = good.split(separator: "\n").map(String.init)
        #expect(throws: SampleCSV.ParseError.self) { try SampleCSV.parse("") }
        #expect(throws: SampleCSV.ParseError.self) { try SampleCSV.parse(lines[0].replacingOccurrences(of: ",freed_pages", with: "") + "\n") }
        #expect(throws: SampleCSV.ParseError.self) { try SampleCSV.parse(lines[0] + "\n" + lines[1] + ",1\n") }
        #expect(throws: SampleCSV.ParseError.self) { try SampleCSV.parse(lines[0] + "\n" + lines[1].replacingOccurrences(of: "lru,fragment,run,1.000", with: "lru,fragment,run,soon") + "\n") }
        #expect(throws: SampleCSV.ParseError.self) { try SampleCSV.parse(lines[0] + "\n\"lru" + lines[1].dropFirst(3) + "\n") }
        #expect(throws: SampleCSV.ParseError.self) { try SampleCSV.records("a\"b\n") }
        #expect(throws: SampleCSV.ParseError.self) { try SampleCSV.records("\"a\"b\n") }
        do {
            _ = try SampleCSV.parse(lines[0] + "\n" + lines[1].replacingOccurrences(of: ",4096,", with: ",-1,") + "\n")
        } catch {
            #expect(error.message.contains("record 1"))
        }
        // A blank line is skipped.
        #expect(try SampleCSV.parse(good + "\n").count == 1)
    }
}

@Suite struct CompareArithmeticTests {
    @Test func rowFromSamples() {
        // A fragment run under lru: 1000 objects evicted to free 10 pages; under page: 260 for 10.
        let lru = CompareRun(setting: "lru", workload: "fragment", ops: 30_000, seconds: 10, shrinkSeconds: 0.5, samples: [
            sample("lru", 0, slab: 4096, hits: 0, misses: 0),
            sample("lru", 5, slab: 8 << 20, hits: 600, misses: 400, freedObjects: 100, freedPages: 1),
            sample("lru", 10, slab: 6 << 20, hits: 900, misses: 100, freedObjects: 1000, freedPages: 10, active: 250, total: 1000, writeback: 7, relocated: 2),
        ])
        let page = CompareRun(setting: "page", workload: "fragment", ops: 36_000, seconds: 12, samples: [
            sample("page", 0, freedObjects: 5, freedPages: 1, reclaimUs: 100),
            sample("page", 12, slab: 5 << 20, hits: 50, misses: 50, freedObjects: 265, freedPages: 11, active: 900, total: 1000, reclaimUs: 2600),
        ])
        let r = CompareRow.compute(lru)
        #expect(r.throughput == 3000)
        #expect(r.hitRate == 90)
        #expect(r.evictedObjects == 1000 && r.pagesFreed == 10 && r.evictedPerPage == 100)
        #expect(r.slabUseAfter == 25)
        #expect(r.reclaimMilliseconds == 500)  // no scan time reported: the shrink's wall time
        #expect(r.writebacks == 7 && r.relocations == 2)
        #expect(r.peakSlabBytes == 8 << 20 && r.endSlabBytes == 6 << 20)
        #expect(r.peakRSSBytes == (8 << 20) + (10 << 20) && r.peakAnonRSSBytes == nil)
        #expect(r.hasShrinkers)
        let p = CompareRow.compute(page)
        #expect(p.throughput == 3000)
        #expect(p.evictedObjects == 260 && p.pagesFreed == 10 && p.evictedPerPage == 26)
        #expect(p.hitRate == 50)
        #expect(p.slabUseAfter == 90)
        #expect(p.reclaimMilliseconds == 2.5)  // scan time from the counters, from first to last sample

        let text = CompareTable.text(workload: "fragment", [r, p])
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == "fragment")
        #expect(lines[1].hasPrefix("setting  ops/s  hit %  evicted  pages freed  evicted/page"))
        #expect(lines[2].split(separator: " ").prefix(9).map(String.init) == ["lru", "3000", "90.0", "1000", "10", "100.00", "25.0%", "500.0", "7"])
        #expect(lines[3].split(separator: " ").prefix(6).map(String.init) == ["page", "3000", "50.0", "260", "10", "26.00"])
        let md = CompareTable.markdown(workload: "fragment", [r, p])
        #expect(md.contains("| lru | 3000 | 90.0 | 1000 | 10 | 100.00 | 25.0% | 500.0 | 7 | 2 | 8.0 | 6.0 | 0 |"))
        let csv = CompareTable.resultsCSV([r, p]).split(separator: "\n").map(String.init)
        #expect(csv[0] == CompareTable.resultsHeader)
        #expect(csv[1] == "fragment,lru,3000.0,0,90.00,1000,10,100.000,25.00,500.000,7,2,8388608,6291456,18874368,,,1")
    }

    @Test func orderCountersGoingDownAndMissingFigures() {
        // Samples out of order; a counter that went down (a restart) counts as 0; no pages freed
        // means no ratio; no lookups means no hit rate; no shrinkers shows "-".
        let run = CompareRun(setting: "default", workload: "tree", ops: 0, seconds: 0, samples: [
            sample("default", 3, slab: 100, freedObjects: 2, freedPages: 0, shrinkers: false),
            sample("default", 1, slab: 300, freedObjects: 5, freedPages: 0, shrinkers: false),
        ])
        let r = CompareRow.compute(run)
        #expect(r.evictedObjects == 0 && r.pagesFreed == 0 && r.evictedPerPage == nil)
        #expect(r.hitRate == nil && r.slabUseAfter == nil && r.reclaimMilliseconds == nil)
        #expect(r.throughput == 0 && r.peakSlabBytes == 300 && r.endSlabBytes == 100)
        #expect(!r.hasShrinkers)
        let text = CompareTable.text(workload: "tree", [r])
        #expect(text.contains("default      0      -        -            -             -               -           -"))
        #expect(text.contains("no shrinker counters"))
        let empty = CompareRow.compute(CompareRun(setting: "x", workload: "tree", ops: 5, seconds: 1, samples: []))
        #expect(empty.throughput == 5 && empty.peakSlabBytes == 0)
    }
}

@Suite struct GnuplotTests {
    @Test func scriptHasOneLinePerSetting() {
        let s = Gnuplot.script(workload: "fragment", chart: .slabMemory,
                               lines: [("lru", "fragment.lru.dat"), ("page", "fragment.page.dat"), ("it's", "fragment.it_s.dat")],
                               output: "fragment-slab-memory.png", format: .png, budgetMiB: 64)
        #expect(s.contains("set terminal pngcairo"))
        #expect(s.contains("set output 'fragment-slab-memory.png'"))
        #expect(s.contains("'fragment.lru.dat' using 1:2 with lines lw 2 title 'lru'"))
        #expect(s.contains("'fragment.page.dat' using 1:2 with lines lw 2 title 'page'"))
        #expect(s.contains("title 'it''s'"))
        #expect(s.contains("64.000 with lines dt 2"))
        #expect(s.components(separatedBy: "using 1:").count - 1 == 3)
        let p = Gnuplot.script(workload: "tree", chart: .pagesFreed, lines: [("a", "a.dat")], output: "x.svg", format: .svg)
        #expect(p.contains("set terminal svg") && p.contains("using 1:3") && !p.contains("budget"))
    }

    @Test func dataIsRelativeToTheFirstSample() {
        var anon = sample("lru", 3, slab: 1 << 20)
        anon.rssAnonBytes = 3 << 20
        let d = Gnuplot.data([sample("lru", 2, slab: 2 << 20, freedPages: 15), sample("lru", 0, slab: 1 << 20, freedPages: 5), anon])
        #expect(d == "# t slab_mib pages_freed rss_mib anon_rss_mib\n0.000 1.000 0 11.000 11.000\n2.000 2.000 10 12.000 12.000\n3.000 1.000 0 11.000 3.000\n")
    }

    /// With gnuplot installed, the scripts draw PNG files (the compare test draws them from a live run).
    @Test func gnuplotDrawsThePNG() throws {
        guard access("/usr/bin/gnuplot", X_OK) == 0 else { return }
        let dir = NSTemporaryDirectory() + "metafs-gnuplot-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (label, slab) in [("lru", UInt64(3 << 20)), ("page", UInt64(2 << 20))] {
            try Gnuplot.data([sample(label, 0), sample(label, 1, slab: slab, freedPages: 4), sample(label, 2, slab: slab / 2, freedPages: 9)])
                .write(toFile: "\(dir)/f.\(label).dat", atomically: true, encoding: .utf8)
        }
        let script = Gnuplot.script(workload: "f", chart: .slabMemory, lines: [("lru", "f.lru.dat"), ("page", "f.page.dat")], output: "f.png", format: .png)
        try script.write(toFile: "\(dir)/f.gp", atomically: true, encoding: .utf8)
        let r = Shell.run("cd '\(dir)' && gnuplot f.gp", timeout: 60)
        #expect(r.ok, "\(r)")
        let png = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/f.png"))
        #expect(png.count > 1000 && Array(png.prefix(4)) == [0x89, 0x50, 0x4E, 0x47])
    }
}

@Suite struct WorkloadGeneratorTests {
    @Test func randomIsSeeded() {
        var a = WorkloadRandom(seed: 7, stream: 1), b = WorkloadRandom(seed: 7, stream: 1), c = WorkloadRandom(seed: 7, stream: 2)
        let xs = (0..<5).map { _ in a.next() }
        #expect(xs == (0..<5).map { _ in b.next() })
        #expect(xs != (0..<5).map { _ in c.next() })
        #expect(WorkloadRandom.hash(1, 2) == WorkloadRandom.hash(1, 2) && WorkloadRandom.hash(1, 2) != WorkloadRandom.hash(2, 1))
        var r = WorkloadRandom(seed: 3)
        var v = Array(0..<100)
        r.shuffle(&v)
        #expect(v.sorted() == Array(0..<100) && v != Array(0..<100))
    }

    @Test func namesAndSurvivors() {
        let names = Set((0..<1000).map { Negative.name(seed: 1, thread: 0, index: $0, length: 24) })
        #expect(names.count == 1000 && names.allSatisfy { $0.utf8.count == 24 && $0.hasPrefix("nx") })
        #expect(Negative.name(seed: 1, thread: 0, index: 5, length: 200).utf8.count == 200)
        let kept = (0..<10_000).filter { Fragment.survives($0, seed: 1, keepPercent: 10) }.count
        #expect(kept > 900 && kept < 1100)
        #expect((0..<1000).allSatisfy { !Fragment.survives($0, seed: 1, keepPercent: 0) && Fragment.survives($0, seed: 1, keepPercent: 100) })
    }

    @Test func validation() {
        for name in WorkloadSpec.names {
            #expect(WorkloadSpec.defaults(name)?.validate() == nil)
            #expect(WorkloadSpec.defaults(name, quick: true)?.validate() == nil)
            #expect(WorkloadSpec.defaults(name)?.name == name)
        }
        #expect(WorkloadSpec.defaults("nope") == nil)
        var t = TreeParameters(); t.fanout = 0
        #expect(WorkloadSpec.tree(t).validate()?.contains("--fanout") == true)
        var n = NegativeParameters(); n.nameLength = 300
        #expect(WorkloadSpec.negative(n).validate()?.contains("--name-length") == true)
        var e = ExtentsParameters(); e.fileSize = 4096
        #expect(WorkloadSpec.extents(e).validate()?.contains("--file-size") == true)
        var c = ChurnParameters(); c.createPercent = 0; c.renamePercent = 0; c.statPercent = 0; c.unlinkPercent = 0
        #expect(WorkloadSpec.churn(c).validate() != nil)
    }

    /// The generator on an ordinary directory (no mount): every workload runs clean, and a stop
    /// request ends a run early.
    @Test(.timeLimit(.minutes(2)))
    func runsOnAnyDirectory() throws {
        let dir = NSTemporaryDirectory() + "metafs-wl-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = WorkloadOptions()
        options.threads = 3
        for name in WorkloadSpec.names {
            options.directory = "w-\(name)"
            options.cleanup = true
            let r = WorkloadRunner.run(WorkloadSpec.defaults(name, quick: true)!, at: dir, options: options)
            #expect(r.succeeded, "\(name): \(r.errorMessages)")
            #expect(r.ops > 0 && r.phases.last?.name == "cleanup")
            #expect(!FileManager.default.fileExists(atPath: "\(dir)/w-\(name)"))
        }
        // A directory that exists is an error, not a silent reuse.
        try FileManager.default.createDirectory(atPath: "\(dir)/taken", withIntermediateDirectories: true)
        options.directory = "taken"; options.cleanup = false
        let taken = WorkloadRunner.run(WorkloadSpec.defaults("negative", quick: true)!, at: dir, options: options)
        #expect(!taken.succeeded && taken.errorMessages.first?.contains("fresh directory") == true)
        // A stop request ends the timed phase.
        let stop = WorkloadStop()
        options.directory = "stopped"
        var n = NegativeParameters(); n.lookups = 100_000_000
        let stopper = Thread { usleep(300_000); stop.request() }
        stopper.start()
        let r = WorkloadRunner.run(.negative(n), at: dir, options: options, stop: stop)
        #expect(r.interrupted && r.errors == 0 && r.ops < 100_000_000)
    }
}

@Suite struct WorkloadScaleTests {
    @Test func scalesTheMainCount() {
        guard case .tree(let t) = WorkloadSpec.defaults("tree")!.scaled(by: 0.5) else { Issue.record("not a tree"); return }
        #expect(t.files == TreeParameters().files / 2 && t.walks == TreeParameters().walks)
        guard case .negative(let n) = WorkloadSpec.defaults("negative")!.scaled(by: 1e-9) else { Issue.record("not negative"); return }
        #expect(n.lookups == 1)
        guard case .churn(let c) = WorkloadSpec.defaults("churn", quick: true)!.scaled(by: 2) else { Issue.record("not churn"); return }
        #expect(c.ops == 2 * ChurnParameters.quick.ops)
    }
}
