import CFuse
import Dispatch
import Glibc
import MetaCache
import Synchronization

/// Reclaim across the user/kernel boundary: when metafs evicts a dentry (shrinker, budget,
/// drop_caches) and `kernel_invalidate` is on, the kernel is told to drop its own dentry for that
/// name too (fuse_lowlevel_notify_inval_entry). The kernel then forgets the inode once nothing
/// uses it, as it would under its own memory pressure, and the next access looks the name up in
/// metafs again. Only useful with entry timeouts above 0; in exercise mode the kernel revalidates
/// every name anyway.
///
/// The dentry cache reports evictions with a shard lock held, so `dentryEvicted` only queues the
/// name. A thread of its own sends the notifications: libfuse forbids sending one from a request
/// handler, since the kernel takes the directory's lock, which the caller of a request in flight
/// may hold. The queue is bounded; what does not fit is counted and not sent (the kernel's dentry
/// then stays until its timeout or the kernel's own reclaim, as without this option).
final class KernelInvalidator: DentryEvictionObserver, @unchecked Sendable {
    static let capacity = 65_536

    private struct Queue {
        var parents: [UInt64] = []
        /// Names back to back; `ends[i]` is where name i ends.
        var bytes: [UInt8] = []
        var ends: [Int] = []
        var stopping = false
    }

    private let session: OpaquePointer
    private let statistics: FuseStatistics
    private let queue = Mutex(Queue())
    private let wakeup = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var thread: pthread_t?

    init(session: OpaquePointer, statistics: FuseStatistics) {
        self.session = session
        self.statistics = statistics
    }

    func dentryEvicted(parent: UInt64, name: UnsafeRawBufferPointer) {
        let wasEmpty = queue.withLock { q -> Bool? in
            guard q.parents.count < Self.capacity, !q.stopping else { return nil }
            q.parents.append(parent)
            q.bytes.append(contentsOf: name)
            q.ends.append(q.bytes.count)
            return q.parents.count == 1
        }
        switch wasEmpty {
        case nil: statistics.invalidations.dropped.add(1, ordering: .relaxed)
        case true?: wakeup.signal()
        case false?: break
        }
    }

    func start() {
        thread = spawnThread { [self] in run() }
    }

    /// Ends the thread once the notification in flight, if any, returns; what is still queued is
    /// not sent. Call when the request loop has ended, before the session is unmounted. Returns
    /// false if the thread did not end within `timeout` seconds: a notification waits in the
    /// kernel for a directory lock that a request nobody will serve now holds, until the unmount
    /// aborts that request. The session must then stay allocated (the thread still uses it).
    func stop(timeout: Double = 2) -> Bool {
        guard let thread else { return true }
        queue.withLock { $0.stopping = true }
        wakeup.signal()
        guard finished.wait(timeout: .now() + timeout) == .success else { return false }
        pthread_join(thread, nil)
        self.thread = nil
        return true
    }

    private func run() {
        defer { finished.signal() }
        while true {
            wakeup.wait()
            // Take the queued names whole: the arrays move out and empty ones take their place,
            // so nothing is copied or allocated while evicting threads wait for the lock.
            let batch = queue.withLock { q -> Queue in
                var taken = Queue()
                swap(&taken, &q)
                q.stopping = taken.stopping
                return taken
            }
            if batch.stopping { return }
            send(batch)
        }
    }

    private func send(_ batch: Queue) {
        batch.bytes.withUnsafeBufferPointer { all in
            var start = 0
            for (i, parent) in batch.parents.enumerated() {
                if queue.withLock({ $0.stopping }) { return }
                let end = batch.ends[i]
                let name = UnsafeRawPointer(all.baseAddress! + start).assumingMemoryBound(to: CChar.self)
                let rc = fuse_lowlevel_notify_inval_entry(session, parent, name, end - start)
                switch rc {
                case 0: statistics.invalidations.sent.add(1, ordering: .relaxed)
                case -ENOENT: statistics.invalidations.notCached.add(1, ordering: .relaxed)
                default: statistics.invalidations.failed.add(1, ordering: .relaxed)
                }
                start = end
            }
        }
    }
}
