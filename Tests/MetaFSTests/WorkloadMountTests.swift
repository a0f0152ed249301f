import Foundation
import Glibc
@testable import MetaFS
import Testing

// Live-mount tests of the workload tooling (issue 5): each workload's quick run on a real metafs,
// `stats --watch`, and one short `compare` that mounts and unmounts by itself. Every mount goes
// through MountFixture, which always unmounts.

/// The figures a workload's output ends with: `result: workload=NAME ops=N ... errors=N`.
func resultFields(_ stdout: String) -> [String: String] {
    guard let line = stdout.split(separator: "\n").last(where: { $0.hasPrefix("result: ") }) else { return [:] }
    var out: [String: String] = [:]
    for f in line.dropFirst(8).split(separator: " ") {
        let kv = f.split(separator: "=", maxSplits: 1)
        if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
    }
    return out
}

func cache(_ s: StatsSnapshot, _ name: String) -> CacheRow { s.caches.first { $0.name == name } ?? CacheRow(name: name) }

@Suite(.serialized) struct WorkloadMountTests {
    @Test(.timeLimit(.minutes(3)), arguments: WorkloadSpec.names)
    func quickWorkload(_ name: String) throws {
        try withMount() { m in
            let before = try StatsSnapshot.parse(m.read(m.control + "/stats.json"))
            let r = m.check("$METAFS workload \(name) $MNT --quick --threads 3 --seed 7 --dir w", "workload \(name)", timeout: 150)
            let fields = resultFields(r.stdout)
            #expect(fields["workload"] == name && fields["errors"] == "0", "\(r.stdout)")
            #expect((Int(fields["ops"] ?? "") ?? 0) > 0 && (Int(fields["ops_per_s"] ?? "") ?? 0) > 0)
            #expect(r.stdout.contains("caches after the workload"), "the cache summary of a metafs mount")
            #expect(!r.stdout.contains("\u{1B}["), "no progress line when stdout is not a terminal")
            let after = try StatsSnapshot.parse(m.read(m.control + "/stats.json"))
            let dentries = cache(after, "metafs_dentry"), inodes = cache(after, "metafs_inode")
            switch name {
            case "tree":
                // 3000 files + 42 directories, each with an inode and a dentry.
                #expect(inodes.activeObjects >= 3000 && dentries.activeObjects >= 3000, "\(after.caches)")
                m.check("test $(find w -type f | wc -l) -eq 3000")
            case "negative":
                #expect(dentries.negative >= 8000, "8000 lookups of missing names leave negative dentries: \(dentries)")
            case "fragment":
                // 90% of the inodes were freed at random: the inode slabs stay allocated but thinly used.
                #expect(inodes.totalObjects > 2 * inodes.activeObjects, "\(inodes)")
                let survivors = (0..<3000).filter { Fragment.survives($0, seed: 7, keepPercent: 10) }.count
                m.check("test $(find w -type f | wc -l) -eq \(survivors)")
            case "extents":
                #expect(cache(after, "metafs_extent").activeObjects > cache(before, "metafs_extent").activeObjects + 500, "\(after.caches)")
                m.check("test $(ls w | wc -l) -eq 4 && test $(stat -c %s w/e0) -eq 4194304")
            default:
                #expect(after.commits >= before.commits)
            }
            #expect(m.unmount(), "clean unmount after \(name)")
            m.check("$METAFS fsck $STORE", "fsck after \(name)")
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func workloadFailsOnErrorsAndRefusesBadOptions() throws {
        try withMount() { m in
            m.check("mkdir taken")
            let r = m.sh("$METAFS workload negative $MNT --quick --dir taken")
            #expect(r.status == 1 && r.stdout.contains("expected a fresh directory") && r.stdout.contains("errors=1"), "\(r)")
            let bad = m.sh("$METAFS workload tree $MNT --fanout 0")
            #expect(bad.status != 0 && bad.stderr.contains("--fanout"), "\(bad)")
            let unknown = m.sh("$METAFS workload nosuch $MNT")
            #expect(unknown.status != 0, "\(unknown)")
            // SIGINT stops a run: exit 130, figures printed, no error.
            let i = m.sh("$METAFS workload negative $MNT --lookups 100000000 --dir int & pid=$!; sleep 1.5; kill -INT $pid; wait $pid; echo rc=$?", timeout: 60)
            #expect(i.stdout.contains("rc=130") && i.stdout.contains("interrupted") && i.stdout.contains("errors=0"), "\(i)")
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func statsWatch() throws {
        try withMount() { m in
            m.check("$METAFS workload tree $MNT --quick --dir w")
            let r = m.check("$METAFS stats $MNT --watch --interval 0.2 --count 3", timeout: 30)
            let frames = r.stdout.components(separatedBy: "  OBJS ACTIVE  USE OBJ SIZE  SLABS OBJ/SLAB CACHE SIZE NAME").count - 1
            #expect(frames == 3, "\(r.stdout)")
            #expect(r.stdout.contains("metafs_dentry") && r.stdout.contains("Active / Total Objects (% used)"))
            #expect(r.stdout.contains("Lookups/s / Hit rate / FUSE ops/s"), "rates from the second frame on")
            #expect(!r.stdout.contains("\u{1B}["), "no terminal escapes into a pipe")
            let i = m.sh("$METAFS stats $MNT --watch & pid=$!; sleep 1.5; kill -INT $pid; wait $pid; echo rc=$?", timeout: 30)
            #expect(i.stdout.contains("rc=0") && i.stdout.contains("OBJS ACTIVE"), "\(i)")
            #expect(m.sh("$METAFS stats $MNT --count 2").status != 0, "--count without --watch")
        }
    }

    /// One short comparison on live mounts that compare makes and removes itself. Its stores and
    /// mount points go outside /tmp/metafs-test.*: the fixture's sweep of stale mounts (run by
    /// mount tests in parallel suites) would take compare's mounts, which have no owner.pid, for
    /// leftovers of a dead test.
    @Test(.timeLimit(.minutes(4)))
    func shortCompare() throws {
        let f = try MountFixture()
        var template = Array("/tmp/metafs-comparetest.XXXXXX".utf8CString)
        let work = try #require(mkdtemp(&template).map { String(cString: $0) })
        defer {
            for mnt in MountTable.mounts().map(\.mountpoint) where mnt.hasPrefix(f.dir + "/") || mnt.hasPrefix(work + "/") {
                MountTable.unmount(mnt)
            }
            if !MountTable.mounts().contains(where: { $0.mountpoint.hasPrefix(work + "/") }) { try? FileManager.default.removeItem(atPath: work) }
            f.teardown()
        }
        func mountedUnder() -> Bool { MountTable.mounts().contains { $0.mountpoint.hasPrefix(f.dir + "/") || $0.mountpoint.hasPrefix(work + "/") } }
        let mountHelp = f.sh("$METAFS mount --help")
        let hasReclaim = mountHelp.stdout.contains("--policy")
        let settings = hasReclaim ? "--setting policy=lru --setting policy=page" : "--setting default --setting again:default"
        let r = f.sh("$METAFS compare --quick --workloads fragment,negative \(settings) --threads 2 --interval 0.2 --settle 0.5 --store-size 512M --report $DIR/report --work-dir \(work)/w1 --no-install",
                     timeout: 200)
        #expect(r.ok, "\(r)")
        #expect(!mountedUnder(), "compare leaves nothing mounted")
        let report = f.dir + "/report"
        let samples = try SampleCSV.parse(f.read(report + "/samples.csv"))
        let labels = hasReclaim ? ["lru", "page"] : ["default", "again"]
        for w in ["fragment", "negative"] {
            for l in labels {
                let mine = samples.filter { $0.workload == w && $0.setting == l }
                #expect(mine.count >= 3, "\(w)/\(l): \(mine.count) samples")
                #expect(mine.first?.phase == "mount" && mine.last?.phase == "end")
                #expect(mine.map(\.t) == mine.map(\.t).sorted())
                #expect((mine.map(\.slabBytes).max() ?? 0) > (mine.first?.slabBytes ?? 0), "the caches grew during \(w)/\(l)")
                #expect(f.read("\(report)/runs/\(w)/\(l)/fsck.txt") == "clean\n")
                #expect(f.read("\(report)/runs/\(w)/\(l)/workload.txt").contains("errors=0"))
                #expect(f.read("\(report)/charts/\(w).\(l).dat").split(separator: "\n").count == mine.count + 1)
            }
            for chart in ["slab-memory", "pages-freed", "rss"] {
                let gp = f.read("\(report)/charts/\(w)-\(chart).gp")
                #expect(gp.components(separatedBy: " with lines lw 2 title ").count - 1 == 2, "one line per setting: \(gp)")
                if access("/usr/bin/gnuplot", X_OK) == 0 {
                    let png = (try? Data(contentsOf: URL(fileURLWithPath: "\(report)/charts/\(w)-\(chart).png"))) ?? Data()
                    #expect(Array(png.prefix(4)) == [0x89, 0x50, 0x4E, 0x47], "\(w)-\(chart).png")
                }
            }
        }
        let results = f.read(report + "/results.csv").split(separator: "\n")
        #expect(results.count == 5 && results[0] == Substring(CompareTable.resultsHeader))
        let md = f.read(report + "/report.md")
        #expect(md.contains("## fragment") && md.contains("## negative") && md.contains("| setting | ops/s |"))
        #expect(r.stdout.contains("evicted/page") && r.stdout.contains("report: \(report)/report.md"))

        if !hasReclaim {
            // Until the reclaim work lands, its options are refused before anything is mounted.
            let refused = f.sh("$METAFS compare --quick --workloads tree --setting policy=page --report $DIR/r2 --work-dir \(work)/w2")
            #expect(refused.status == 1 && refused.stderr.contains("--policy"), "\(refused)")
            #expect(!FileManager.default.fileExists(atPath: work + "/w2"))
        }
        let badSetting = f.sh("$METAFS compare --setting colour=red --report $DIR/r3")
        #expect(badSetting.status == 1 && badSetting.stderr.contains("unknown key 'colour'"))

        // Interrupted: exit 130, a report of what finished, nothing mounted.
        let i = f.sh("$METAFS compare --workloads negative --setting default --report $DIR/r4 --work-dir \(work)/w4 --no-install & pid=$!; sleep 3; kill -INT $pid; wait $pid; echo rc=$?",
                     timeout: 120)
        #expect(i.stdout.contains("rc=130"), "\(i)")
        #expect(!mountedUnder(), "nothing mounted after an interrupt")
        #expect(FileManager.default.fileExists(atPath: f.dir + "/r4/report.md"))
    }
}
