import Glibc

/// The namespace lock. Calls that only read the namespace (lookup, getattr, read, readdir) and data
/// writes hold it shared; calls that change names or attributes, and every commit, hold it
/// exclusive, so a commit sees a consistent set of dirty objects. Writer-preferring, so a stream
/// of lookups cannot starve the flusher.
final class NamespaceLock: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        var attr = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attr)
        pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attr)
        pthread_rwlockattr_destroy(&attr)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    @inline(__always)
    func shared<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    @inline(__always)
    func exclusive<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}

/// Striped per-inode mutexes: serialise data writes and cache fills of one inode while the
/// namespace lock is held shared, so two writers never allocate the same hole twice and a fill
/// from the store never overwrites a newer cached copy.
final class InodeLocks: @unchecked Sendable {
    private static let stripes = 256
    private let mutexes: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutexes = .allocate(capacity: Self.stripes)
        for i in 0..<Self.stripes { pthread_mutex_init(mutexes + i, nil) }
    }

    deinit {
        for i in 0..<Self.stripes { pthread_mutex_destroy(mutexes + i) }
        mutexes.deallocate()
    }

    @inline(__always)
    func with<R, E: Error>(_ ino: UInt64, _ body: () throws(E) -> R) throws(E) -> R {
        // Fibonacci hashing spreads consecutive inode numbers over the stripes.
        let stripe = Int((ino &* 0x9E37_79B9_7F4A_7C15) >> 56) & (Self.stripes - 1)
        pthread_mutex_lock(mutexes + stripe)
        defer { pthread_mutex_unlock(mutexes + stripe) }
        return try body()
    }
}
