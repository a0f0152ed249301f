import Glibc
import MetaCache

/// Name operations: lookup, the calls that make and remove names, rename, link, and attributes.
extension FileSystem {
    /// Linux's limit for ext4 (EXT4_LINK_MAX).
    static let maxLinks: UInt32 = 65000

    public func lookup(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> InodeAttributes {
        try Self.validate(name: name)
        return try namespace.shared { () throws(FSError) -> InodeAttributes in
            _ = try directory(parent)
            guard let found = try resolve(parent: parent, name: name) else { throw FSError(ENOENT) }
            return handedToKernel(try inode(found.ino))
        }
    }

    public func getattr(_ ino: UInt64) throws(FSError) -> InodeAttributes {
        try namespace.shared { () throws(FSError) -> InodeAttributes in try inode(ino) }
    }

    public func setattr(_ ino: UInt64, _ changes: AttributeChanges, caller: Caller) throws(FSError) -> InodeAttributes {
        try namespace.exclusive { () throws(FSError) -> InodeAttributes in
            let current = try inode(ino)
            let t = now()
            if let size = changes.size, size != current.size {
                guard !current.isDirectory else { throw FSError(EISDIR) }
                guard current.isRegular else { throw FSError(EINVAL) }
                try truncateLocked(ino, from: current.size, to: size)
            }
            let changed = try modifyInode(ino) { attributes in
                if let mode = changes.mode { attributes.mode = (attributes.mode & S_IFMT) | (mode & 0o7777) }
                if let uid = changes.uid { attributes.uid = uid }
                if let gid = changes.gid { attributes.gid = gid }
                if let size = changes.size {
                    if size != attributes.size, changes.mtime == nil { attributes.mtime = t }
                    attributes.size = size
                }
                switch changes.atime {
                case .now: attributes.atime = t
                case .set(let time): attributes.atime = time
                case nil: break
                }
                switch changes.mtime {
                case .now: attributes.mtime = t
                case .set(let time): attributes.mtime = time
                case nil: break
                }
                attributes.ctime = changes.ctime ?? t
            }
            try commitIfLarge()
            return changed
        }
    }

    public func readlink(_ ino: UInt64) throws(FSError) -> [UInt8] {
        try namespace.shared { () throws(FSError) -> [UInt8] in
            guard try inode(ino).isSymlink else { throw FSError(EINVAL) }
            if let target = pendingSymlinks.withLock({ $0[ino] }) { return target }
            return try io { () throws(StoreError) in try store.readSymlink(ino) }
        }
    }

    public func mknod(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, rdev: UInt64, caller: Caller) throws(FSError) -> InodeAttributes {
        let type = mode & S_IFMT
        guard [S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK].contains(type) || type == 0 else { throw FSError(EINVAL) }
        return try makeNode(parent: parent, name: name, mode: type == 0 ? mode | S_IFREG : mode, rdev: rdev, caller: caller)
    }

    public func mkdir(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, caller: Caller) throws(FSError) -> InodeAttributes {
        try makeNode(parent: parent, name: name, mode: S_IFDIR | (mode & 0o7777), rdev: 0, caller: caller)
    }

    public func symlink(target: UnsafeRawBufferPointer, parent: UInt64, name: UnsafeRawBufferPointer, caller: Caller) throws(FSError) -> InodeAttributes {
        guard target.count > 0 else { throw FSError(ENOENT) }
        guard target.count < 4096 else { throw FSError(ENAMETOOLONG) }
        return try makeNode(parent: parent, name: name, mode: S_IFLNK | 0o777, rdev: 0, caller: caller, symlinkTarget: Array(target))
    }

    func makeNode(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, rdev: UInt64, caller: Caller,
                  symlinkTarget: [UInt8]? = nil) throws(FSError) -> InodeAttributes {
        try Self.validate(name: name)
        return try namespace.exclusive { () throws(FSError) -> InodeAttributes in
            let attributes = try makeNodeLocked(parent: parent, name: name, mode: mode, rdev: rdev, caller: caller,
                                                symlinkTarget: symlinkTarget)
            try commitIfLarge()
            return handedToKernel(attributes)
        }
    }

    /// Allocates an inode, caches it and its dentry dirty, and updates the parent. Exclusive lock held.
    func makeNodeLocked(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, rdev: UInt64, caller: Caller,
                        symlinkTarget: [UInt8]? = nil) throws(FSError) -> InodeAttributes {
        let directory = try directory(parent)
        guard directory.nlink > 0 else { throw FSError(ENOENT) }  // removed while we held it
        if try resolve(parent: parent, name: name) != nil { throw FSError(EEXIST) }
        let isDirectory = mode & S_IFMT == S_IFDIR
        if isDirectory && directory.nlink >= Self.maxLinks { throw FSError(EMLINK) }
        let (ino, generation): (UInt64, UInt32)
        do {
            (ino, generation) = try io { () throws(StoreError) in try store.allocateInode() }
        } catch where error.code == ENOSPC {
            // Inodes freed since the last commit return to the allocator when it is durable.
            try commitLocked()
            (ino, generation) = try io { () throws(StoreError) in try store.allocateInode() }
        }
        var mode = mode
        var gid = caller.gid
        if directory.mode & S_ISGID != 0 {
            // BSD group semantics on a setgid directory, as ext4 and tmpfs do.
            gid = directory.gid
            if isDirectory { mode |= S_ISGID }
        }
        let t = now()
        let attributes = InodeAttributes(
            ino: ino, mode: mode, nlink: isDirectory ? 2 : 1, uid: caller.uid, gid: gid, rdev: rdev,
            size: UInt64(symlinkTarget?.count ?? 0), blocks: 0, atime: t, mtime: t, ctime: t,
            generation: generation, flags: 0)
        cache.inodes.insert(attributes, dirty: true)
        if let symlinkTarget { pendingSymlinks.withLock { $0[ino] = symlinkTarget } }
        cache.dentries.insert(parent: parent, name: name, ino: ino, type: attributes.fileType, dirty: true)
        try modifyInode(parent) { parent in
            parent.mtime = t
            parent.ctime = t
            if isDirectory { parent.nlink += 1 }
        }
        return attributes
    }

    public func link(_ ino: UInt64, newParent: UInt64, newName: UnsafeRawBufferPointer) throws(FSError) -> InodeAttributes {
        try Self.validate(name: newName)
        return try namespace.exclusive { () throws(FSError) -> InodeAttributes in
            let attributes = try inode(ino)
            guard !attributes.isDirectory else { throw FSError(EPERM) }
            guard attributes.nlink > 0 else { throw FSError(ENOENT) }
            guard attributes.nlink < Self.maxLinks else { throw FSError(EMLINK) }
            _ = try directory(newParent)
            if try resolve(parent: newParent, name: newName) != nil { throw FSError(EEXIST) }
            let t = now()
            let linked = try modifyInode(ino) { $0.nlink += 1; $0.ctime = t }
            cache.dentries.insert(parent: newParent, name: newName, ino: ino, type: linked.fileType, dirty: true)
            try touchDirectory(newParent, at: t)
            try commitIfLarge()
            return handedToKernel(linked)
        }
    }

    public func unlink(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) {
        try removeName(parent: parent, name: name, directory: false)
    }

    public func rmdir(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) {
        try removeName(parent: parent, name: name, directory: true)
    }

    private func removeName(parent: UInt64, name: UnsafeRawBufferPointer, directory wantDirectory: Bool) throws(FSError) {
        try Self.validate(name: name)
        try namespace.exclusive { () throws(FSError) in
            _ = try directory(parent)
            guard let target = try resolve(parent: parent, name: name) else { throw FSError(ENOENT) }
            let attributes = try inode(target.ino)
            if wantDirectory {
                guard attributes.isDirectory else { throw FSError(ENOTDIR) }
                guard try isEmptyDirectory(target.ino) else { throw FSError(ENOTEMPTY) }
            } else if attributes.isDirectory {
                throw FSError(EISDIR)
            }
            let t = now()
            cache.dentries.insert(parent: parent, name: name, ino: 0, type: 0, dirty: true)
            try dropLink(target.ino, at: t)
            try modifyInode(parent) { parent in
                parent.mtime = t
                parent.ctime = t
                if wantDirectory { parent.nlink -= 1 }
            }
            try commitIfLarge()
        }
    }

    /// One name of `ino` is gone: a file loses a link, a directory all of them.
    private func dropLink(_ ino: UInt64, at t: Timespec) throws(FSError) {
        let after = try modifyInode(ino) { attributes in
            attributes.nlink = attributes.isDirectory ? 0 : attributes.nlink - 1
            attributes.ctime = t
        }
        if after.nlink == 0 { lostLastLink(ino) }
    }

    private func touchDirectory(_ ino: UInt64, at t: Timespec) throws(FSError) {
        try modifyInode(ino) { $0.mtime = t; $0.ctime = t }
    }

    /// Whether a directory has no entries, without a commit (exclusive lock held, so the dirty
    /// dentries are the whole difference between the namespace and the store). A name made since
    /// the last commit is a dirty positive dentry; a name removed since then is still in the
    /// store, under a negative dentry (dirty, so never evicted). So the directory is empty when
    /// no dirty positive dentry is in it and every name the store lists is negated in the cache:
    /// `rm -r` removes a directory's files and then the directory, all in one batch.
    func isEmptyDirectory(_ ino: UInt64) throws(FSError) -> Bool {
        if cache.dentries.hasDirtyEntry(in: ino) { return false }
        var empty = true
        // A directory made since the last commit is not in the store yet: it lists nothing.
        try ioUncommitted(()) { () throws(StoreError) in
            try store.readDirectory(ino, after: 0) { name, _, _, _ in
                if case .negative = cache.dentries.lookup(parent: ino, name: name) { return true }
                empty = false
                return false
            }
        }
        return empty
    }

    public func rename(parent: UInt64, name: UnsafeRawBufferPointer, newParent: UInt64, newName: UnsafeRawBufferPointer,
                       flags: UInt32) throws(FSError) {
        let noReplace = Linux.renameNoReplace, exchange = Linux.renameExchange
        guard flags & ~(noReplace | exchange) == 0, flags != noReplace | exchange else { throw FSError(EINVAL) }
        try Self.validate(name: name)
        try Self.validate(name: newName)
        try namespace.exclusive { () throws(FSError) in
            _ = try directory(parent)
            _ = try directory(newParent)
            guard let source = try resolve(parent: parent, name: name) else { throw FSError(ENOENT) }
            let destination = try resolve(parent: newParent, name: newName)
            let sourceAttributes = try inode(source.ino)
            let t = now()

            if flags & exchange != 0 {
                guard let destination else { throw FSError(ENOENT) }
                let destinationAttributes = try inode(destination.ino)
                cache.dentries.insert(parent: parent, name: name, ino: destination.ino, type: destination.type, dirty: true)
                cache.dentries.insert(parent: newParent, name: newName, ino: source.ino, type: source.type, dirty: true)
                if parent != newParent && sourceAttributes.isDirectory != destinationAttributes.isDirectory {
                    // The ".." link moves with the directory.
                    let (from, to) = sourceAttributes.isDirectory ? (parent, newParent) : (newParent, parent)
                    try modifyInode(from) { $0.nlink -= 1 }
                    try modifyInode(to) { $0.nlink += 1 }
                }
                try modifyInode(source.ino) { $0.ctime = t }
                try modifyInode(destination.ino) { $0.ctime = t }
                try touchDirectory(parent, at: t)
                if newParent != parent { try touchDirectory(newParent, at: t) }
                try commitIfLarge()
                return
            }

            if let destination {
                guard flags & noReplace == 0 else { throw FSError(EEXIST) }
                if destination.ino == source.ino { return }  // two links to one inode: nothing to do
                let destinationAttributes = try inode(destination.ino)
                if sourceAttributes.isDirectory {
                    guard destinationAttributes.isDirectory else { throw FSError(ENOTDIR) }
                    guard try isEmptyDirectory(destination.ino) else { throw FSError(ENOTEMPTY) }
                } else if destinationAttributes.isDirectory {
                    throw FSError(EISDIR)
                }
            }

            cache.dentries.insert(parent: parent, name: name, ino: 0, type: 0, dirty: true)
            cache.dentries.insert(parent: newParent, name: newName, ino: source.ino, type: source.type, dirty: true)
            if let destination {
                try dropLink(destination.ino, at: t)
                // A replaced directory takes its ".." link to newParent with it.
                if sourceAttributes.isDirectory { try modifyInode(newParent) { $0.nlink -= 1 } }
            }
            if sourceAttributes.isDirectory && parent != newParent {
                try modifyInode(parent) { $0.nlink -= 1 }
                try modifyInode(newParent) { $0.nlink += 1 }
            }
            try modifyInode(source.ino) { $0.ctime = t }
            try touchDirectory(parent, at: t)
            if newParent != parent { try touchDirectory(newParent, at: t) }
            try commitIfLarge()
        }
    }
}
