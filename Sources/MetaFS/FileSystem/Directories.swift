import Glibc
import MetaCache
import Synchronization

/// Reading directories. Entries come from the store's directory in its stable cookie order; names
/// created or removed since the last commit live only in the dentry cache, so the first readdir of
/// a listing (offset 0 or 1) commits them first, and readdir skips names the dentry cache already
/// knows to be gone. The commit is not made at opendir: programs open directories for the *at
/// calls (openat, fstatat, unlinkat, renameat) far more often than they list them, and a commit
/// per opendir made a create in a fresh directory pay for one every 100 files.
extension FileSystem {
    /// Readdir offsets: 1 and 2 resume after "." and "..", and a store cookie c resumes at c + 2.
    private static let firstStoreOffset: UInt64 = 2

    public func opendir(_ ino: UInt64) throws(FSError) -> UInt64 {
        _ = try namespace.shared { () throws(FSError) -> InodeAttributes in try directory(ino) }
        return 0
    }

    public func releasedir(_ ino: UInt64, fh: UInt64) {}

    public func fsyncdir(_ ino: UInt64, datasync: Bool) throws(FSError) {
        try sync()
    }

    public func readdir(_ ino: UInt64, fh: UInt64, offset: UInt64, plus: Bool,
                        _ emit: (_ name: UnsafeRawBufferPointer, _ attributes: InodeAttributes, _ nextOffset: UInt64) -> Bool) throws(FSError) {
        if offset <= 1 && cache.dentries.dirtyCount > 0 {
            try namespace.exclusive { () throws(FSError) in try commitLocked() }
        }
        try namespace.shared { () throws(FSError) in
            let directory = try directory(ino)
            var offset = offset
            if offset == 0 {
                guard Self.emitDot(".", directory, 1, emit) else { return }
                offset = 1
            }
            if offset == 1 {
                // The listing's first readdir committed pending renames, so the store's parent
                // pointer is current.
                var parent = directory
                parent.ino = try ioUncommitted(ino) { () throws(StoreError) in try store.parent(of: ino) }
                guard Self.emitDot("..", parent, 2, emit) else { return }
                offset = 2
            }
            var cookie = offset - Self.firstStoreOffset
            while true {
                // Entries are copied out in batches so that no store lock is held while inodes
                // are filled and the reply buffer is written.
                let batch = try io { () throws(StoreError) -> [StoreDirectoryEntry] in
                    var entries: [StoreDirectoryEntry] = []
                    try store.readDirectory(ino, after: cookie) { name, entryIno, type, next in
                        entries.append(StoreDirectoryEntry(name: Array(name), ino: entryIno, type: type, cookie: next))
                        return entries.count < 128
                    }
                    return entries
                }
                if batch.isEmpty { return }
                for entry in batch {
                    cookie = entry.cookie
                    let taken = try entry.name.withUnsafeBytes { name in
                        Result { () throws(FSError) -> Bool in
                            try emitEntry(directory: ino, name: name, entry.ino, entry.type,
                                          next: entry.cookie + Self.firstStoreOffset, plus: plus, emit)
                        }
                    }.get()
                    if !taken { return }
                }
            }
        }
    }

    /// Emits one store entry as the dentry cache currently knows it. Returns false when the
    /// reply buffer is full.
    private func emitEntry(directory ino: UInt64, name: UnsafeRawBufferPointer, _ storedIno: UInt64, _ storedType: UInt8,
                           next: UInt64, plus: Bool,
                           _ emit: (UnsafeRawBufferPointer, InodeAttributes, UInt64) -> Bool) throws(FSError) -> Bool {
        var current = storedIno
        var type = storedType
        let known = cache.dentries.lookup(parent: ino, name: name)
        switch known {
        case .negative: return true  // removed since opendir
        case .positive(let cachedIno, let cachedType): current = cachedIno; type = cachedType
        case .miss: break
        }
        let attributes = plus
            ? try inode(current)
            : InodeAttributes(ino: current, mode: UInt32(type) << 12, nlink: 0, uid: 0, gid: 0)
        guard emit(name, attributes, next) else { return false }
        if plus {
            kernelLookups.increment(current)
            // The kernel now holds a dentry for it; so do we.
            if known == .miss {
                cache.dentries.insert(parent: ino, name: name, ino: current, type: type, dirty: false)
            }
        }
        return true
    }

    private static func emitDot(_ dot: StaticString, _ directory: InodeAttributes, _ next: UInt64,
                                _ emit: (UnsafeRawBufferPointer, InodeAttributes, UInt64) -> Bool) -> Bool {
        emit(UnsafeRawBufferPointer(start: dot.utf8Start, count: dot.utf8CodeUnitCount), directory, next)
    }
}

private struct StoreDirectoryEntry {
    var name: [UInt8]
    var ino: UInt64
    var type: UInt8
    var cookie: UInt64
}
