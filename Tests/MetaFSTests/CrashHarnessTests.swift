import CrashHarness
import Foundation
import Glibc
import MetaCache
import Testing
@testable import MetaFS

/// Issue 6, item 2: the crash harness in CI. ACE-style workloads run against FileSystem with the
/// store in persisted-image mode; every crash state (after each barrier, and part-way through each
/// multi-unit barrier at cache-line granularity) is recovered and checked.
@Suite struct CrashHarnessTests {
    static var directory: String {
        var st = stat()
        return stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    }

    @Test(.timeLimit(.minutes(3)))
    func generatedWorkloadsSurviveEveryCrashState() throws {
        var o = HarnessOptions()
        o.seed = UInt64(ProcessInfo.processInfo.environment["METAFS_CRASH_SEED"] ?? "") ?? 20240601
        o.workloads = Int(ProcessInfo.processInfo.environment["METAFS_CRASH_WORKLOADS"] ?? "") ?? 300
        o.partialsPerBarrier = 1
        o.granularity = 64
        o.directory = Self.directory
        let report = CrashHarness.run(o)
        print("crash harness: seed \(o.seed): \(report.summary)")
        for f in report.failures.prefix(10) { Issue.record("\(f)") }
        #expect(report.workloads >= 300)
        #expect(report.crashStates >= 1000)
        #expect(report.failures.isEmpty)
    }

    @Test func pageGranularityAndOtherSeed() throws {
        var o = HarnessOptions()
        o.seed = 99
        o.workloads = 40
        o.partialsPerBarrier = 2
        o.granularity = 4096
        o.directory = Self.directory
        let report = CrashHarness.run(o)
        for f in report.failures.prefix(10) { Issue.record("\(f)") }
        #expect(report.failures.isEmpty && report.crashStates > 100)
    }

    /// The stronger model: stores not yet persisted may reach persistent memory early (a cache
    /// eviction), so crash images also take a random subset of them.
    @Test func earlyWriteBacks() throws {
        var o = HarnessOptions()
        o.seed = 31
        o.workloads = 30
        o.earlyLanding = true
        o.directory = Self.directory
        let report = CrashHarness.run(o)
        for f in report.failures.prefix(10) { Issue.record("\(f)") }
        #expect(report.failures.isEmpty && report.earlyStates > 20, "\(report.summary)")
    }

    @Test func workloadsAreReproducible() {
        for i in 0..<50 {
            let a = WorkloadGenerator.make(seed: 5, index: i), b = WorkloadGenerator.make(seed: 5, index: i)
            #expect(a.operations == b.operations)
            #expect(a.operations.count <= 7 && a.operations.last!.isPersistencePoint)
            #expect(a.operations.filter { !$0.isPersistencePoint }.count <= 3)
        }
    }

    /// The image only persist() changes: stores without a barrier do not reach it.
    @Test func persistedImageChangesOnlyAtBarriers() throws {
        let t = try TempStore(size: 2 << 20, inodes: 64)
        let s = try t.open()
        let rec = try s.startPersistedImage(granularity: 64)
        let r = try s.allocateBlocks(count: 1, goal: 0)
        let offset = Int(r.start) * 4096
        s.dataPointer(block: r.start).storeBytes(of: 0xDEAD_BEEF, as: UInt32.self)
        #expect(rec.current()[offset] == 0)            // stored, not persisted
        s.persist(offset: offset, length: 4)
        #expect(rec.barrierCount == 1 && rec.barriers[0].bytes.count == 64)   // one cache line
        #expect(rec.current()[offset] == 0xEF)
        var cursor = CrashImageCursor(rec)
        #expect(cursor.partial([false])[offset] == 0)
        cursor.advance()
        #expect(cursor.image[offset] == 0xEF)
        s.stopPersistedImage()
        try s.close()
    }

    /// A checkpoint of a journaled superblock torn at cache-line granularity (the orphan head
    /// landed, the bitmap checksums not, or the reverse) must not make the store unopenable: the
    /// journal still holds the whole block.
    @Test func tornSuperblockCheckpointRecovers() throws {
        let t = try TempStore(size: 2 << 20, inodes: 64)
        let s = try t.open()
        let f = try makeFile(s, "f")
        let rec = try s.startPersistedImage(granularity: 64)
        let r = try s.allocateBlocks(count: 1, goal: 0)
        let tx = s.beginTransaction()
        try tx.setExtents(f, mapping: [StoreExtent(logical: 0, length: 1, physical: r.start)])   // a bitmap change
        var inode = try #require(try s.readInode(f)); inode.nlink = 0
        try tx.writeInode(f, inode)
        try tx.removeEntry(directory: 1, name: b("f"))
        try tx.addOrphan(f)                                                                     // the orphan head
        try tx.commit()
        s.stopPersistedImage()
        try s.close()
        var cursor = CrashImageCursor(rec)
        let path = t.dir + "/crash.store"
        var checked = 0
        while let barrier = cursor.next {
            var masks: [[Bool]] = [Array(repeating: true, count: barrier.units)]
            if barrier.offset == 0 {
                // The superblock: each line alone, and all lines but one.
                for u in 0..<barrier.units {
                    masks.append((0..<barrier.units).map { $0 == u })
                    masks.append((0..<barrier.units).map { $0 != u })
                }
            }
            for m in masks {
                try CrashImageCursor.write(cursor.partial(m), to: path)
                let c = try Store.open(path: path)
                #expect(c.check() == [], "barrier \(barrier.index) at \(barrier.offset)")
                #expect(try lookup(c, 1, "f") == nil || cursor.position < 3)
                try c.close()
                checked += 1
            }
            cursor.advance()
        }
        #expect(checked > 10)
    }

    /// An xattr set too big for the store's xattr block fails alone (ENOSPC) before the commit, so
    /// the other dirty objects of that moment still commit.
    @Test func oversizedXattrFailsAloneBeforeTheCommit() throws {
        let t = try TempStore(size: 2 << 20, inodes: 64)
        var options = FileSystemOptions()
        options.flushInterval = 0
        let fs = try FileSystem(storePath: t.path, cache: MetaCache(), options: options)
        let caller = Caller(uid: 0, gid: 0, pid: 1)
        let name = Array("f".utf8), xname = Array("user.big".utf8), value = [UInt8](repeating: 0x61, count: 5000)
        let (a, fh) = try name.withUnsafeBytes { try fs.create(parent: 1, name: $0, mode: 0o644, flags: O_RDWR, caller: caller) }
        fs.release(a.ino, fh: fh)
        let before = fs.store.usage.commits
        do {
            try xname.withUnsafeBytes { n in try value.withUnsafeBytes { v in try fs.setxattr(a.ino, name: n, value: v, flags: 0) } }
            Issue.record("a 5000-byte xattr was accepted")
        } catch let e as FSError { #expect(e.code == ENOSPC) }
        #expect(fs.store.usage.commits == before)   // nothing was attempted
        try fs.sync()
        #expect(try lookup(fs.store, 1, "f")?.ino == a.ino)
        fs.shutdown()
    }
}
