import Glibc
import MetaCache

/// Extended attributes. They are not cached: the store holds them, and a change is committed at
/// once together with everything dirty (so the inode it belongs to is in the store first).
extension FileSystem {
    /// Linux's XATTR_SIZE_MAX and XATTR_NAME_MAX.
    static let maxXattrValue = 65536
    static let maxXattrName = 255

    public func getxattr(_ ino: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> [UInt8] {
        try namespace.shared { () throws(FSError) -> [UInt8] in
            _ = try inode(ino)
            let attributes = try ioUncommitted([]) { () throws(StoreError) in try store.readXattrs(ino) }
            guard let found = attributes.first(where: { $0.name.elementsEqual(name) }) else { throw FSError(ENODATA) }
            return found.value
        }
    }

    public func listxattr(_ ino: UInt64) throws(FSError) -> [UInt8] {
        try namespace.shared { () throws(FSError) -> [UInt8] in
            _ = try inode(ino)
            let attributes = try ioUncommitted([]) { () throws(StoreError) in try store.readXattrs(ino) }
            var list: [UInt8] = []
            for attribute in attributes {
                list += attribute.name
                list.append(0)
            }
            return list
        }
    }

    public func setxattr(_ ino: UInt64, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: Int32) throws(FSError) {
        guard name.count > 0, name.count <= Self.maxXattrName else { throw FSError(ERANGE) }
        guard value.count <= Self.maxXattrValue else { throw FSError(E2BIG) }
        let create = Linux.xattrCreate, replace = Linux.xattrReplace
        guard flags & ~(create | replace) == 0 else { throw FSError(EINVAL) }
        try changeXattrs(ino) { (attributes) throws(FSError) in
            let index = attributes.firstIndex { $0.name.elementsEqual(name) }
            if index != nil && flags & create != 0 { throw FSError(EEXIST) }
            if index == nil && flags & replace != 0 { throw FSError(ENODATA) }
            if let index {
                attributes[index].value = Array(value)
            } else {
                attributes.append((name: Array(name), value: Array(value)))
            }
        }
    }

    public func removexattr(_ ino: UInt64, name: UnsafeRawBufferPointer) throws(FSError) {
        try changeXattrs(ino) { (attributes) throws(FSError) in
            guard let index = attributes.firstIndex(where: { $0.name.elementsEqual(name) }) else { throw FSError(ENODATA) }
            attributes.remove(at: index)
        }
    }

    private func changeXattrs(_ ino: UInt64, _ change: (inout [(name: [UInt8], value: [UInt8])]) throws(FSError) -> Void) throws(FSError) {
        try namespace.exclusive { () throws(FSError) in
            _ = try inode(ino)
            var attributes = try ioUncommitted([]) { () throws(StoreError) in try store.readXattrs(ino) }
            try change(&attributes)
            // Too big for the store's xattr block: fail this call alone, not the whole commit.
            guard Store.xattrsFit(attributes) else { throw FSError(ENOSPC) }
            let t = now()
            try modifyInode(ino) { $0.ctime = t }
            let changed = attributes
            try commitLocked { (transaction) throws(StoreError) in try transaction.setXattrs(ino, changed) }
        }
    }
}
