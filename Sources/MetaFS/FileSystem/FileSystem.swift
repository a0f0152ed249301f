import Dispatch
import Glibc
import MetaCache
import Synchronization

/// The POSIX file system. Every lookup goes through the dentry cache, every getattr through the
/// inode cache, every read and write maps blocks through the extent cache; a miss reads the store
/// and fills the cache. Updates change the cached objects and mark them dirty, and the flusher
/// (Writeback.swift) commits them to the store in journaled batches.
///
/// Locking: `namespace` shared for calls that read names or attributes and for data I/O,
/// exclusive for calls that change names or attributes and for every commit; `inodeLocks`
/// serialise fills and data writes of one inode under the shared lock. Cache objects have their
/// own locks inside MetaCache. Order: namespace → inode stripe → orphan/handle mutexes → MetaCache.
public final class FileSystem: @unchecked Sendable {
    public let cache: MetaCache
    /// The store (public for the crash harness's persisted-image mode and fsck tooling).
    public let store: Store
    let options: FileSystemOptions
    let namespace = NamespaceLock()
    let inodeLocks = InodeLocks()
    let kernelLookups = KernelLookupTable()
    let handles = Mutex(OpenFiles())
    let orphans = Mutex(OrphanState())
    /// Targets of symlinks created since the last commit (the store gets them in the commit).
    let pendingSymlinks = Mutex([UInt64: [UInt8]]())
    let blockSize: UInt64
    let commits = Atomic<UInt64>(0)
    let committedObjects = Atomic<UInt64>(0)
    /// Calls that may still run before the dirty objects can reach the commit threshold
    /// (Writeback.commitIfLarge); at 0 or below, count them.
    let commitBudget = Atomic<Int>(0)
    var flusher: Flusher?

    public init(storePath: String, cache: MetaCache, options: FileSystemOptions) throws(FSError) {
        do {
            store = try Store.open(path: storePath)
        } catch {
            throw FSError(error.errno, message: "\(storePath): \(error)")
        }
        self.cache = cache
        self.options = options
        self.blockSize = UInt64(store.blockSize)
        if options.flushInterval > 0 {
            flusher = Flusher(interval: options.flushInterval) { [unowned self] in
                try? self.sync()
            }
        }
        startReclaim()
    }

    /// Stop the reclaimer and the flusher, commit everything, close the store (unmount).
    public func shutdown() {
        stopReclaim()
        flusher?.stop()
        flusher = nil
        do {
            try sync()
            try store.close()
        } catch {
            logError("error at unmount: \(error)")
        }
    }

    // MARK: - Inodes through the cache

    /// The inode's attributes, from the inode cache or, on a miss, read from the store into it.
    func inode(_ ino: UInt64) throws(FSError) -> InodeAttributes {
        if let attributes = cache.inodes.get(ino) { return attributes }
        return try inodeLocks.with(ino) { () throws(FSError) -> InodeAttributes in
            try fillInode(ino)
        }
    }

    /// Reads the inode from the store into the cache unless a (possibly newer) copy is already
    /// there. The caller holds the inode's stripe lock or the exclusive namespace lock.
    func fillInode(_ ino: UInt64) throws(FSError) -> InodeAttributes {
        if cache.inodes.contains(ino), let attributes = cache.inodes.get(ino) { return attributes }
        guard ino != 0, let disk = try io({ () throws(StoreError) in try store.readInode(ino) }) else {
            throw FSError(ENOENT)
        }
        let attributes = InodeAttributes(ino: ino, disk: disk)
        cache.inodes.insert(attributes, dirty: false)
        return attributes
    }

    /// Changes a cached inode and marks it dirty, filling it first if it was evicted.
    @discardableResult
    func modifyInode(_ ino: UInt64, _ body: (inout InodeAttributes) -> Void) throws(FSError) -> InodeAttributes {
        while true {
            if let attributes = cache.inodes.update(ino, body) { return attributes }
            _ = try inodeLocks.with(ino) { () throws(FSError) -> InodeAttributes in try fillInode(ino) }
        }
    }

    func directory(_ ino: UInt64) throws(FSError) -> InodeAttributes {
        let attributes = try inode(ino)
        guard attributes.isDirectory else { throw FSError(ENOTDIR) }
        return attributes
    }

    // MARK: - Names through the dentry cache

    /// What `name` in `parent` refers to: the dentry cache, or on a miss the store's directory,
    /// whose answer is cached as a positive or negative dentry.
    func resolve(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> (ino: UInt64, type: UInt8)? {
        switch cache.dentries.lookup(parent: parent, name: name) {
        case .positive(let ino, let type):
            return (ino, type)
        case .negative:
            return nil
        case .miss:
            let found = try ioUncommitted(nil) { () throws(StoreError) in try store.lookup(directory: parent, name: name) }
            if let found {
                // The dentry pins its inode, so the inode goes in first.
                _ = try inode(found.ino)
                cache.dentries.insert(parent: parent, name: name, ino: found.ino, type: found.type, dirty: false)
            } else {
                cache.dentries.insert(parent: parent, name: name, ino: 0, type: 0, dirty: false)
            }
            return found
        }
    }

    static func validate(name: UnsafeRawBufferPointer) throws(FSError) {
        guard name.count <= 255 else { throw FSError(ENAMETOOLONG) }
        guard name.count > 0 else { throw FSError(ENOENT) }
    }

    // MARK: - Kernel lookup counts and orphans

    /// Counts one kernel reference to an entry being returned.
    func handedToKernel(_ attributes: InodeAttributes) -> InodeAttributes {
        kernelLookups.increment(attributes.ino)
        return attributes
    }

    public func forget(_ ino: UInt64, count: UInt64) {
        if kernelLookups.decrement(ino, by: count) {
            releaseIfOrphan(ino)
        }
    }

    /// An inode's last link is gone: free it at the next commit, or keep it on the orphan list
    /// while a file handle or the kernel still holds it.
    func lostLastLink(_ ino: UInt64) {
        let open = handles.withLock { $0.isOpen(ino) }
        let known = kernelLookups.isKnown(ino)
        orphans.withLock { state in
            if open || known {
                state.orphans.insert(ino)
                state.toRecord.insert(ino)
            } else {
                state.toFree.insert(ino)
            }
        }
    }

    func releaseIfOrphan(_ ino: UInt64) {
        let open = handles.withLock { $0.isOpen(ino) }
        let known = kernelLookups.isKnown(ino)
        guard !open && !known else { return }
        orphans.withLock { state in
            if state.orphans.remove(ino) != nil {
                state.toFree.insert(ino)
            }
        }
    }

    // MARK: - Statistics

    public func statistics() -> FileSystemStatistics {
        let usage = store.usage
        let memory = ProcessMemory.resident()
        return FileSystemStatistics(
            caches: cache.statistics(),
            cacheBytes: UInt64(cache.memoryBytes),
            storeBytes: usage.storeBytes,
            storeUsedBytes: usage.usedBytes,
            storeBlocks: usage.totalBlocks,
            storeFreeBlocks: usage.freeBlocks,
            storeInodes: usage.totalInodes,
            storeFreeInodes: usage.freeInodes,
            commits: commits.load(ordering: .relaxed),
            committedObjects: committedObjects.load(ordering: .relaxed),
            knownInodes: UInt64(kernelLookups.count),
            openFiles: UInt64(handles.withLock { $0.count }),
            rssBytes: UInt64(memory.total),
            rssAnonymousBytes: UInt64(memory.anonymous),
            rssFileBytes: UInt64(memory.file))
    }

    public func statfs() -> FileSystemUsage {
        let usage = store.usage
        return FileSystemUsage(blockSize: blockSize, blocks: usage.totalBlocks, freeBlocks: usage.freeBlocks,
                               files: usage.totalInodes, freeFiles: usage.freeInodes, nameMax: 255)
    }
}

/// Open file handles and how many are open per inode (an open file pins its inode and keeps an
/// unlinked inode on the orphan list).
struct OpenFiles {
    private var nextHandle: UInt64 = 1
    private var inodeOf: [UInt64: UInt64] = [:]
    private var openCount: [UInt64: Int] = [:]

    mutating func open(_ ino: UInt64) -> UInt64 {
        let handle = nextHandle
        nextHandle += 1
        inodeOf[handle] = ino
        openCount[ino, default: 0] += 1
        return handle
    }

    /// Returns the inode and whether this was its last open handle.
    mutating func close(_ handle: UInt64) -> (ino: UInt64, last: Bool)? {
        guard let ino = inodeOf.removeValue(forKey: handle) else { return nil }
        let remaining = (openCount[ino] ?? 1) - 1
        openCount[ino] = remaining > 0 ? remaining : nil
        return (ino, remaining == 0)
    }

    func isOpen(_ ino: UInt64) -> Bool { openCount[ino] != nil }
    var count: Int { inodeOf.count }
}

/// Inodes whose last link is gone. `orphans` are still held (open or known to the kernel);
/// `toRecord` must be put on the store's orphan list at the next commit; `toFree` are released
/// by the next commit. `recorded` are on the store's list now.
struct OrphanState {
    var orphans: Set<UInt64> = []
    var toRecord: Set<UInt64> = []
    var toFree: Set<UInt64> = []
    var recorded: Set<UInt64> = []
}

// MARK: - Small helpers

/// Runs a store read about an inode that may not have reached the store yet (created since the last
/// commit): ENOENT from the store then means "nothing there", which is `missing`.
@inline(__always)
func ioUncommitted<T>(_ missing: T, _ body: () throws(StoreError) -> T) throws(FSError) -> T {
    try io { () throws(StoreError) -> T in try ioUncommittedStore(missing, body) }
}

/// `ioUncommitted` for callers that stay in StoreError.
@inline(__always)
func ioUncommittedStore<T>(_ missing: T, _ body: () throws(StoreError) -> T) throws(StoreError) -> T {
    do {
        return try body()
    } catch where error.errno == ENOENT {
        return missing
    }
}

/// Runs a store call, turning its error into the errno the kernel gets.
@inline(__always)
func io<T>(_ body: () throws(StoreError) -> T) throws(FSError) -> T {
    do {
        return try body()
    } catch {
        throw FSError(error.errno)
    }
}

func now() -> Timespec {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Timespec(seconds: Int64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
}

extension InodeAttributes {
    init(ino: UInt64, disk: DiskInode) {
        self.init(ino: ino, mode: disk.mode, nlink: disk.nlink, uid: disk.uid, gid: disk.gid, rdev: disk.rdev,
                  size: disk.size, blocks: disk.blocks, atime: disk.atime, mtime: disk.mtime, ctime: disk.ctime,
                  generation: disk.generation, flags: disk.flags)
    }

    var disk: DiskInode {
        DiskInode(mode: mode, nlink: nlink, uid: uid, gid: gid, rdev: rdev, size: size, blocks: blocks,
                  atime: atime, mtime: mtime, ctime: ctime, generation: generation, flags: flags)
    }

    var isRegular: Bool { mode & S_IFMT == S_IFREG }
    var isSymlink: Bool { mode & S_IFMT == S_IFLNK }
}
