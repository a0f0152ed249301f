import Foundation
import Glibc
@testable import MetaCache
@testable import MetaFS
import Synchronization
import Testing

// The locking contract between reclaim and the file system (docs/RECLAIM.md), without a mount:
// FileSystem operations on several threads under a tiny budget with the background reclaimer
// stopped, so every reclaim is direct, on threads that hold the namespace lock. The writeback
// hook is the production one (`sync`, exclusive namespace lock): direct reclaim must never call
// it (it would deadlock), no update may be lost, and the store must stay consistent.

final class ThreadRegistry: @unchecked Sendable {
    private let ids = Mutex<Set<UInt>>([])
    func add() { ids.withLock { _ = $0.insert(UInt(pthread_self())) } }
    var containsCurrent: Bool { ids.withLock { $0.contains(UInt(pthread_self())) } }
}

final class EventCount: @unchecked Sendable {
    private let value = Atomic<Int>(0)
    func add() { value.wrappingAdd(1, ordering: .relaxed) }
    func load() -> Int { value.load(ordering: .relaxed) }
}

/// Runs `body(i)` on `count` threads at once and waits for all of them.
func runReclaimThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let t = Thread { body(i); group.leave() }
        t.stackSize = 1 << 22
        t.start()
    }
    group.wait()
}

@Suite struct ReclaimFileSystemTests {
    @Test(.timeLimit(.minutes(2)))
    func directReclaimUnderTheNamespaceLockNeverWritesBack() throws {
        let f = try FileSystemTests.Fixture(size: 256 << 20)
        let fs = f.fs
        let caller = f.caller
        let workers = ThreadRegistry()
        let onWorker = EventCount()
        let batches = EventCount()
        fs.cache.reclaimer.stop()
        fs.cache.reclaimer.setWriteback({ [weak fs] in
            if workers.containsCurrent { onWorker.add() }
            batches.add()
            try fs?.sync()
        })
        fs.cache.reclaimer.update { $0.budgetBytes = 1 << 20; $0.dirty = .writeback; $0.reclaimers = 1; $0.policy = .hybrid }
        var dirList: [UInt64] = []
        for t in 0..<4 { dirList.append(try f.mkdir(1, "t\(t)")) }
        let dirs = dirList
        let policies = ReclaimPolicy.allCases
        let failures = EventCount()
        runReclaimThreads(4) { t in
            workers.add()
            for i in 0..<1500 {
                do {
                    let (a, fh) = try "f\(i)".withBytes { n throws(FSError) in
                        try fs.create(parent: dirs[t], name: n, mode: 0o644, flags: O_RDWR, caller: caller)
                    }
                    let data = Array("thread \(t) file \(i)\n".utf8)
                    _ = try data.withUnsafeBytes { b throws(FSError) in try fs.write(a.ino, fh: fh, offset: 0, from: b) }
                    fs.release(a.ino, fh: fh)
                    _ = try "f\(i / 2)".withBytes { n throws(FSError) in try fs.lookup(parent: dirs[t], name: n) }
                    if i % 100 == 99 {
                        let p = policies[i / 100 % 3]
                        fs.cache.reclaimer.update { $0.policy = p }
                    }
                } catch {
                    failures.add()
                }
            }
        }
        let st = fs.cache.reclaimer.statistics()
        print("direct reclaims \(st.directReclaims), waits \(st.directWaits), writeback batches \(batches.load()), freed \(st.shrinkers.reduce(0) { $0 + $1.freedObjects }) objects")
        #expect(failures.load() == 0)
        #expect(st.directReclaims > 0)
        #expect(onWorker.load() == 0, "the writeback hook ran on a thread doing file-system work")
        // An explicit shrink (no namespace lock held) may write back.
        let r = fs.cache.reclaimer.shrink(.pages(1000))
        #expect(r.freedObjects > 0)
        func verify() throws {
            for t in 0..<4 {
                let dir = try f.lookup(1, "t\(t)").ino
                for i in stride(from: 0, to: 1500, by: 7) {
                    let a = try f.lookup(dir, "f\(i)")
                    let fh = try fs.open(a.ino, flags: O_RDONLY)
                    #expect(try f.read(a.ino, fh, at: 0, count: 100) == Array("thread \(t) file \(i)\n".utf8))
                    fs.release(a.ino, fh: fh)
                }
            }
        }
        try verify()
        try f.reopen()
        try verify()
        #expect(try f.fs.check() == [])
    }
}
