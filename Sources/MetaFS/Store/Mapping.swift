import Glibc
import Synchronization

/// A reader-writer lock (pthread_rwlock): metadata reads shared, checkpoint exclusive.
final class RWLock: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>
    init() {
        lock = .allocate(capacity: 1)
        pthread_rwlock_init(lock, nil)
    }
    deinit { pthread_rwlock_destroy(lock); lock.deallocate() }
    func readLock() { pthread_rwlock_rdlock(lock) }
    func writeLock() { pthread_rwlock_wrlock(lock) }
    func unlock() { pthread_rwlock_unlock(lock) }
    @inline(__always) func withRead<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        readLock(); defer { unlock() }
        return try body()
    }
    @inline(__always) func withWrite<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        writeLock(); defer { unlock() }
        return try body()
    }
}

/// A binary semaphore not tied to a thread: one transaction at a time, begun on one thread and
/// possibly committed on another.
final class Gate: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    private var held = false
    init() {
        mutex = .allocate(capacity: 1); cond = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil); pthread_cond_init(cond, nil)
    }
    deinit {
        pthread_cond_destroy(cond); pthread_mutex_destroy(mutex)
        cond.deallocate(); mutex.deallocate()
    }
    func enter() {
        pthread_mutex_lock(mutex)
        while held { pthread_cond_wait(cond, mutex) }
        held = true
        pthread_mutex_unlock(mutex)
    }
    func leave() {
        pthread_mutex_lock(mutex)
        held = false
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }
}

/// The store file and its MAP_SHARED mapping. `persist` is the one durability barrier.
final class Mapping: @unchecked Sendable {
    let fd: Int32
    let base: UnsafeMutableRawPointer
    let length: Int
    /// Called with every persisted range (issue 6's persisted-image mode hooks in here).
    var persistObserver: ((_ offset: Int, _ length: Int) -> Void)?
    /// Persisted-image mode: the image persistent memory would hold, updated here and only here.
    var persistedImage: PersistedImage?
    private let persists = Atomic<UInt64>(0)
    private let bytes = Atomic<UInt64>(0)
    private(set) var unmapped = false

    init(fd: Int32, length: Int) throws(StoreError) {
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let p, p != MAP_FAILED else { throw .system("mmap of the \(length)-byte store") }
        self.fd = fd; self.base = p; self.length = length
    }
    deinit { unmap() }

    func unmap() {
        if !unmapped { munmap(base, length); unmapped = true }
    }

    var persistCount: UInt64 { persists.load(ordering: .relaxed) }
    var persistedBytes: UInt64 { bytes.load(ordering: .relaxed) }

    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    @inline(__always) func block(_ b: UInt64) -> UnsafeMutableRawPointer { base + Int(b) << Layout.blockShift }

    /// The only durability barrier: msync(MS_SYNC) of the pages covering [offset, offset+length).
    func persist(offset: Int, length: Int) throws(StoreError) {
        guard length > 0 else { return }
        precondition(offset >= 0 && offset + length <= self.length, "persist range out of the store")
        let page = Mapping.pageSize
        let start = offset & ~(page - 1)
        let end = min((offset + length + page - 1) & ~(page - 1), self.length)
        persists.add(1, ordering: .relaxed); bytes.add(UInt64(end - start), ordering: .relaxed)
        if msync(base + start, end - start, MS_SYNC) != 0 {
            throw .system("msync of store bytes \(start)..<\(end)")
        }
        persistedImage?.record(base, offset: offset, length: length)
        persistObserver?(offset, length)
    }

    func persistBlocks(_ start: UInt64, count: Int) throws(StoreError) {
        try persist(offset: Int(start) << Layout.blockShift, length: count << Layout.blockShift)
    }
}
