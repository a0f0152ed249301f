import CFuse
import Glibc
import MetaCache
import Synchronization

/// What every request handler needs; passed to libfuse as the session's userdata (Unmanaged).
final class FuseContext: @unchecked Sendable {
    let fs: FileSystem
    let control: ControlDirectory
    let stats: FuseStatistics
    let options: FuseMountOptions
    private let shutDown = Mutex(false)

    init(fs: FileSystem, options: FuseMountOptions, stats: FuseStatistics) {
        self.fs = fs
        self.options = options
        self.stats = stats
        self.control = ControlDirectory(fs: fs, fuseStatistics: stats)
    }

    /// Writes everything back and closes the store, once (destroy, signal, or unmount).
    func shutdownOnce() {
        let first = shutDown.withLock { done in
            defer { done = true }
            return !done
        }
        if first { fs.shutdown() }
    }

    @inline(__always)
    static func of(_ req: fuse_req_t?) -> FuseContext {
        Unmanaged<FuseContext>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }
}

extension Caller {
    /// The process making the request.
    @inline(__always)
    init(_ req: fuse_req_t?) {
        let ctx = fuse_req_ctx(req)!.pointee
        self.init(uid: ctx.uid, gid: ctx.gid, pid: ctx.pid)
    }
}

/// A name from the kernel as a buffer (no NUL). Names longer than NAME_MAX fail with
/// ENAMETOOLONG here, so the file system can rely on 1...255 bytes.
@inline(__always)
func fuseName(_ p: UnsafePointer<CChar>?) throws(FSError) -> UnsafeRawBufferPointer {
    guard let p else { throw FSError(EINVAL) }
    let n = strlen(p)
    guard n > 0 else { throw FSError(ENOENT) }
    guard n <= 255 else { throw FSError(ENAMETOOLONG) }
    return UnsafeRawBufferPointer(start: UnsafeRawPointer(p), count: n)
}
