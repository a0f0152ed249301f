import MetaCache

/// What the FUSE layer dispatches to: exactly the public API of `FileSystem` (which conforms below).
/// The protocol exists so the FUSE glue and the control directory can be exercised on a live mount
/// with a small in-memory file system in the tests, independently of the store. Its requirements
/// are copied from `FileSystem`'s fixed signatures; keep the two in step.
public protocol FileSystemBackend: AnyObject, Sendable {
    var cache: MetaCache { get }
    func lookup(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> InodeAttributes
    func forget(_ ino: UInt64, count: UInt64)
    func getattr(_ ino: UInt64) throws(FSError) -> InodeAttributes
    func setattr(_ ino: UInt64, _ changes: AttributeChanges, caller: Caller) throws(FSError) -> InodeAttributes
    func readlink(_ ino: UInt64) throws(FSError) -> [UInt8]
    func mknod(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, rdev: UInt64, caller: Caller) throws(FSError) -> InodeAttributes
    func mkdir(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, caller: Caller) throws(FSError) -> InodeAttributes
    func unlink(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError)
    func rmdir(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError)
    func symlink(target: UnsafeRawBufferPointer, parent: UInt64, name: UnsafeRawBufferPointer, caller: Caller) throws(FSError) -> InodeAttributes
    func rename(parent: UInt64, name: UnsafeRawBufferPointer, newParent: UInt64, newName: UnsafeRawBufferPointer, flags: UInt32) throws(FSError)
    func link(_ ino: UInt64, newParent: UInt64, newName: UnsafeRawBufferPointer) throws(FSError) -> InodeAttributes
    func open(_ ino: UInt64, flags: Int32) throws(FSError) -> UInt64
    func create(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, flags: Int32, caller: Caller) throws(FSError) -> (InodeAttributes, UInt64)
    func read(_ ino: UInt64, fh: UInt64, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(FSError) -> Int
    func write(_ ino: UInt64, fh: UInt64, offset: UInt64, from data: UnsafeRawBufferPointer) throws(FSError) -> Int
    func flush(_ ino: UInt64, fh: UInt64) throws(FSError)
    func release(_ ino: UInt64, fh: UInt64)
    func fsync(_ ino: UInt64, datasync: Bool) throws(FSError)
    func opendir(_ ino: UInt64) throws(FSError) -> UInt64
    func readdir(_ ino: UInt64, fh: UInt64, offset: UInt64, plus: Bool,
                 _ emit: (_ name: UnsafeRawBufferPointer, _ attributes: InodeAttributes, _ nextOffset: UInt64) -> Bool) throws(FSError)
    func releasedir(_ ino: UInt64, fh: UInt64)
    func fsyncdir(_ ino: UInt64, datasync: Bool) throws(FSError)
    func statfs() -> FileSystemUsage
    func fallocate(_ ino: UInt64, mode: Int32, offset: UInt64, length: UInt64) throws(FSError)
    func setxattr(_ ino: UInt64, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: Int32) throws(FSError)
    func getxattr(_ ino: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> [UInt8]
    func listxattr(_ ino: UInt64) throws(FSError) -> [UInt8]
    func removexattr(_ ino: UInt64, name: UnsafeRawBufferPointer) throws(FSError)
    func lseek(_ ino: UInt64, fh: UInt64, offset: Int64, whence: Int32) throws(FSError) -> Int64
    func sync() throws(FSError)
    func dropCaches() -> (objects: Int, pages: Int)
    func statistics() -> FileSystemStatistics
    func shutdown()
}

extension FileSystem: FileSystemBackend {}
