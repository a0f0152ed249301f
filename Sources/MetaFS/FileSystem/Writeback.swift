import Dispatch
import Foundation
import Glibc
import MetaCache
import Synchronization

/// Writeback: dirty cache objects reach the store in one journaled transaction per commit. A
/// commit runs every few seconds (the flusher), on fsync, syncfs, `sync` in control, and unmount.
extension FileSystem {
    /// Commit every dirty object (syncfs, `sync` in control).
    public func sync() throws(FSError) {
        try namespace.exclusive { () throws(FSError) in try commitLocked() }
    }

    /// Commits, then checks the store (fsck) under the exclusive lock; empty when clean.
    public func check() throws(FSError) -> [String] {
        try namespace.exclusive { () throws(FSError) -> [String] in
            try commitLocked()
            return store.check()
        }
    }

    /// Commits when the dirty objects approach what one journal transaction can hold, so a batch
    /// always fits. Called at the end of calls that hold the namespace lock exclusively; calls
    /// under the shared lock kick the flusher instead.
    ///
    /// Counting the dirty objects takes every shard lock of three caches (a few microseconds, as
    /// long as the create it follows), so it is not done after every call: after a count of `d`,
    /// `(commitThreshold - d) / maxDirtiedPerCall` calls can run before the threshold can be
    /// reached, and only then is it counted again. Commits only lower the count, so the budget
    /// stays on the safe side whatever commits in between.
    func commitIfLarge() throws(FSError) {
        if commitBudget.subtract(1, ordering: .relaxed).newValue > 0 { return }
        let dirty = dirtyObjects
        if dirty >= commitThreshold {
            try commitLocked()
        } else {
            resetCommitBudget(dirty: dirty)
        }
    }

    func kickFlusherIfLarge() {
        if commitBudget.subtract(1, ordering: .relaxed).newValue > 0 { return }
        let dirty = dirtyObjects
        if dirty >= commitThreshold {
            flusher?.kick()
        } else {
            resetCommitBudget(dirty: dirty)
        }
    }

    /// The most objects one call can make dirty between two `commitIfLarge`/`kickFlusherIfLarge`
    /// checks (a rename: two dentries and four inodes; a write: its inode and its extents).
    static let maxDirtiedPerCall = 8

    func resetCommitBudget(dirty: Int) {
        commitBudget.store(max(0, commitThreshold - dirty) / Self.maxDirtiedPerCall, ordering: .relaxed)
    }

    var dirtyObjects: Int {
        cache.inodes.dirtyCount + cache.dentries.dirtyCount + cache.extents.dirtyInodeCount
    }

    /// A dirty object changes at most a few metadata blocks (inode table, directory block and its
    /// index, bitmaps, an extent block), so this many always fit in one transaction.
    var commitThreshold: Int { max(16, store.maxTransactionBlocks / 6) }

    /// `drop_caches` in control: commit, then evict every clean unpinned object.
    public func dropCaches() -> (objects: Int, pages: Int) {
        namespace.exclusive { () -> (objects: Int, pages: Int) in
            do {
                try commitLocked()
            } catch {
                logError("commit before drop_caches failed: \(error)")
            }
            return cache.dropCaches()
        }
    }

    /// Collects every dirty object and commits them in one transaction: inodes (new ones must exist
    /// before anything refers to them), extent maps (the store persists their data before the
    /// journal record), symlink targets, directory entries, then orphan-list changes and frees. If the commit fails
    /// the objects are put back dirty. Holds the namespace lock exclusively (caller).
    func commitLocked(extra: ((StoreTransaction) throws(StoreError) -> Void)? = nil) throws(FSError) {
        let extents = cache.extents.takeDirty(limit: Int.max)
        let inodes = cache.inodes.takeDirty(limit: Int.max)
        let dentries = cache.dentries.takeDirty(limit: Int.max)
        let symlinks = pendingSymlinks.withLock { pending in
            defer { pending.removeAll() }
            return pending
        }
        let (toRecord, toFree, recorded) = orphans.withLock { state in
            defer { state.toRecord.removeAll(); state.toFree.removeAll() }
            return (state.toRecord, state.toFree, state.recorded)
        }
        let objects = extents.count + inodes.count + dentries.count + symlinks.count + toRecord.count + toFree.count
        guard objects > 0 || extra != nil else { return }

        let transaction = store.beginTransaction()
        do throws(StoreError) {
            for attributes in inodes {
                try transaction.writeInode(attributes.ino, attributes.disk)
            }
            for (ino, mappings) in extents {
                let map = try ioUncommittedStore([]) { () throws(StoreError) in try store.readExtents(ino) }
                try transaction.setExtents(ino, mapping: ExtentList.overlay(map, with: mappings))
            }
            for (ino, target) in symlinks {
                try transaction.setSymlink(ino, target: target)
            }
            for dentry in dentries {
                if dentry.ino == 0 {
                    do {
                        try transaction.removeEntry(directory: dentry.parent, name: dentry.name)
                    } catch where error.errno == ENOENT {
                        // Created and removed between two commits: the store never had it.
                    }
                } else {
                    try transaction.addEntry(directory: dentry.parent, name: dentry.name, ino: dentry.ino, type: dentry.type)
                }
            }
            for ino in toRecord where !toFree.contains(ino) {
                try transaction.addOrphan(ino)
            }
            for ino in toFree {
                if recorded.contains(ino) { try transaction.removeOrphan(ino) }
                try transaction.freeInode(ino)
            }
            try extra?(transaction)
            try transaction.commit()
        } catch {
            // Nothing reached the store: make everything dirty again so the next commit retries.
            for (ino, mappings) in extents {
                for mapping in mappings { cache.extents.insert(ino: ino, mapping, dirty: true) }
            }
            for attributes in inodes { cache.inodes.insert(attributes, dirty: true) }
            for dentry in dentries {
                dentry.name.withUnsafeBytes { name in
                    cache.dentries.insert(parent: dentry.parent, name: name, ino: dentry.ino, type: dentry.type, dirty: true)
                }
            }
            pendingSymlinks.withLock { $0.merge(symlinks) { current, _ in current } }
            orphans.withLock { state in
                state.toRecord.formUnion(toRecord)
                state.toFree.formUnion(toFree)
            }
            logError("commit failed: \(error)")
            throw FSError(error.errno)
        }

        orphans.withLock { state in
            state.recorded.formUnion(toRecord.subtracting(toFree))
            state.recorded.subtract(toFree)
        }
        for ino in toFree {
            cache.inodes.remove(ino)
        }
        // Under the exclusive lock nothing else is dirty now.
        resetCommitBudget(dirty: 0)
        commits.add(1, ordering: .relaxed)
        committedObjects.add(UInt64(objects), ordering: .relaxed)
    }
}

/// The background thread that commits dirty metadata every `interval` seconds, or sooner when
/// kicked (a batch grew large).
final class Flusher: @unchecked Sendable {
    private let interval: Double
    private let flush: @Sendable () -> Void
    private let wakeup = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)

    init(interval: Double, flush: @escaping @Sendable () -> Void) {
        self.interval = interval
        self.flush = flush
        let thread = Thread { [self] in run() }
        thread.name = "metafs-flusher"
        thread.start()
    }

    private func run() {
        while !stopping.load(ordering: .acquiring) {
            _ = wakeup.wait(timeout: .now() + interval)
            if stopping.load(ordering: .acquiring) { break }
            flush()
        }
        finished.signal()
    }

    /// Commit soon rather than at the next tick.
    func kick() {
        wakeup.signal()
    }

    func stop() {
        stopping.store(true, ordering: .releasing)
        wakeup.signal()
        finished.wait()
    }
}
