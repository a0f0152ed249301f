import Synchronization

/// The FUSE operations metafs counts (one counter pair per operation).
public enum FuseOperation: Int, CaseIterable, Sendable {
    case lookup, forget, forgetMulti, getattr, setattr, readlink, mknod, mkdir, unlink, rmdir
    case symlink, rename, link, open, create, read, write, flush, release, fsync
    case opendir, readdir, readdirplus, releasedir, fsyncdir, statfs, fallocate
    case setxattr, getxattr, listxattr, removexattr, lseek

    /// The name libfuse and the kernel use (FUSE_LOOKUP → "lookup").
    public var name: String {
        switch self {
        case .forgetMulti: return "forget_multi"
        default: return String(describing: self)
        }
    }
}

/// Per-operation request and error counts, updated with relaxed atomics (a few ns per request).
public final class FuseStatistics: Sendable {
    final class Counter: Sendable {
        let count = Atomic<UInt64>(0)
        let errors = Atomic<UInt64>(0)
        let bytes = Atomic<UInt64>(0)
    }
    private let counters: [Counter]

    public init() { counters = FuseOperation.allCases.map { _ in Counter() } }

    @inline(__always)
    public func count(_ op: FuseOperation) {
        counters[op.rawValue].count.wrappingAdd(1, ordering: .relaxed)
    }
    @inline(__always)
    public func error(_ op: FuseOperation) {
        counters[op.rawValue].errors.wrappingAdd(1, ordering: .relaxed)
    }
    @inline(__always)
    public func bytes(_ op: FuseOperation, _ n: Int) {
        counters[op.rawValue].bytes.wrappingAdd(UInt64(truncatingIfNeeded: n), ordering: .relaxed)
    }

    public struct Snapshot: Sendable, Equatable {
        public var operation: FuseOperation
        public var count: UInt64
        public var errors: UInt64
        /// Bytes moved (read and write only).
        public var bytes: UInt64
    }

    public func snapshot() -> [Snapshot] {
        FuseOperation.allCases.map { op in
            let c = counters[op.rawValue]
            return Snapshot(operation: op, count: c.count.load(ordering: .relaxed),
                            errors: c.errors.load(ordering: .relaxed), bytes: c.bytes.load(ordering: .relaxed))
        }
    }
}
