import Glibc
@testable import MetaCache
@testable import MetaFS
import Testing

// The reclaim commands of `<mount>/.metafs/control` (issue 4, item 9), their value parsers
// (shared with the mount options) and the stats.json/metrics rendering of reclaim.

@Suite struct ReclaimControlTests {
    @Test func acceptsReclaimCommands() throws {
        #expect(try ControlCommandParser.parse("shrink 1000\n") == .shrink(.objects(1000)))
        #expect(try ControlCommandParser.parse("shrink 25%") == .shrink(.percent(25)))
        #expect(try ControlCommandParser.parse("shrink 64M") == .shrink(.bytes(64 << 20)))
        #expect(try ControlCommandParser.parse("policy page") == .policy(.page))
        #expect(try ControlCommandParser.parse("policy hybrid") == .policy(.hybrid))
        #expect(try ControlCommandParser.parse("budget 256M") == .budget(.bytes(256 << 20)))
        #expect(try ControlCommandParser.parse("budget 1.5G") == .budget(.bytes(3 << 29)))
        #expect(try ControlCommandParser.parse("budget off") == .budget(.off))
        #expect(try ControlCommandParser.parse("budget auto") == .budget(.auto))
        #expect(try ControlCommandParser.parse("dirty writeback") == .dirty(.writeback))
        #expect(try ControlCommandParser.parse("dirty skip") == .dirty(.skip))
        #expect(try ControlCommandParser.parse("segregate on") == .segregate(true))
        #expect(try ControlCommandParser.parse("reclaimers 4") == .reclaimers(4))
        #expect(try ControlCommandParser.parse("limit dentry 16M") == .limit(cache: "dentry", bytes: 16 << 20))
        #expect(try ControlCommandParser.parse("limit extent off") == .limit(cache: "extent", bytes: nil))
        #expect(try ControlCommandParser.parse("negative_max 10000") == .negativeMax(10000))
        #expect(try ControlCommandParser.parse("negative_max off") == .negativeMax(nil))
        #expect(try ControlCommandParser.parse("kernel_invalidate on") == .kernelInvalidate(true))
        #expect(try ControlCommandParser.parse("kernel_invalidate off\n") == .kernelInvalidate(false))
    }

    @Test(arguments: ["shrink", "shrink 0", "shrink -1", "shrink 0%", "shrink 150%", "shrink 0M", "shrink 1 2",
                      "shrink 99999999999999999999999", "shrink 2P", "policy", "policy mru", "policy LRU", "budget 0", "budget -1",
                      "budget -64M", "budget 0M", "budget 512K", "budget 99999999999999999999", "budget 16384P", "budget 2P",
                      "budget 64Q", "budget M", "dirty", "dirty never", "segregate 2", "reclaimers 0", "reclaimers 65",
                      "reclaimers -1", "reclaimers 1.5", "limit", "limit dentry", "limit dcache 1M", "limit inode 0",
                      "limit inode 1K", "negative_max", "negative_max 0", "negative_max -5", "negative_max 99999999999999999999",
                      "kernel_invalidate", "kernel_invalidate maybe", "kernel_invalidate on off"])
    func rejectsBadValues(_ text: String) {
        #expect(throws: ControlCommandError.self) { try ControlCommandParser.parse(text) }
    }

    @Test func messagesNameTheValue() {
        do { _ = try ReclaimArgument.budget("0") } catch { #expect(error.message.contains("positive")) }
        do { _ = try ReclaimArgument.budget("-5M") } catch { #expect(error.message.contains("negative")) }
        do { _ = try ReclaimArgument.policy("clock") } catch { #expect(error.message.contains("lru, page, hybrid")) }
        do { _ = try ControlCommandParser.parse("limit x 1M") } catch { #expect(error.message.contains("dentry, inode, extent")) }
        do { _ = try ControlCommandParser.parse("policy") } catch { #expect(error.message.contains("usage: policy lru|page|hybrid")) }
    }

    static func statistics() -> ReclaimStatistics {
        var settings = ReclaimSettings()
        settings.budgetBytes = 64 << 20
        settings.policy = .page
        var dentry = ShrinkerStatistics(name: "dentry")
        dentry.scanned = 100; dentry.freedObjects = 90; dentry.freedPages = 3; dentry.scans = 4
        dentry.scanMicrosecondsTotal = 40; dentry.scanMicrosecondsAverage = 10; dentry.scanMicrosecondsMax = 17.5
        return ReclaimStatistics(settings: settings, merge: false, budgetBytes: 64 << 20, highWatermarkBytes: 60 << 20,
                                 lowWatermarkBytes: 56 << 20, slabBytes: 1 << 20, directReclaims: 2, directWaits: 0,
                                 directGiveUps: 0, backgroundRuns: 1, writebackBatches: 0, writebackErrors: 0,
                                 negativeTrimmed: 0, negativeDentries: 5,
                                 shrinkers: [dentry, ShrinkerStatistics(name: "inode"), ShrinkerStatistics(name: "extent")])
    }

    @Test func statsJSONHasTheIssueKeys() throws {
        let st = FileSystemStatistics(caches: [], cacheBytes: 0, storeBytes: 0, storeUsedBytes: 0, storeBlocks: 0,
                                      storeFreeBlocks: 0, storeInodes: 0, storeFreeInodes: 0, commits: 0, committedObjects: 0,
                                      knownInodes: 0, openFiles: 0, rssBytes: 1, rssAnonymousBytes: 1, rssFileBytes: 0)
        let json = ControlRendering.json(ControlSnapshot(statistics: st, fuse: [], uptimeSeconds: 1, reclaim: Self.statistics()))
        let parsed = try StatsSnapshot.parse(json)
        #expect(parsed.budgetBytes == 64 << 20)
        #expect(parsed.shrinkers.map(\.name) == ["dentry", "inode", "extent"])
        let dentry = parsed.shrinkers[0]
        #expect(Array(dentry.counters.map(\.0).prefix(ShrinkerRow.keys.count)) == ShrinkerRow.keys)
        #expect(dentry["freed_objects"] == 90 && dentry["scan_us_max"] == 17.5 && dentry["scan_us_avg"] == 10)
        #expect(parsed.reclaimMicroseconds == 40)
        #expect(json.contains("\"rss_bytes\": 1") && json.contains("\"slab_bytes\": "))
        let metrics = ControlRendering.metrics(ControlSnapshot(statistics: st, fuse: [], uptimeSeconds: 1, reclaim: Self.statistics()))
        #expect(metrics.contains("metafs_shrinker_freed_objects_total{shrinker=\"dentry\"} 90\n"))
        #expect(metrics.contains("# TYPE metafs_budget_bytes gauge\nmetafs_budget_bytes 67108864\n"))
        let text = ControlRendering.stats(ControlSnapshot(statistics: st, fuse: [], uptimeSeconds: 1, reclaim: Self.statistics()))
        #expect(text.contains("reclaim: budget 64.0 MiB (high 60.0 MiB, low 56.0 MiB), policy page"))
    }
}
