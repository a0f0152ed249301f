import Glibc
import Synchronization

/// The FUSE operations metafs counts (one counter set and one latency histogram per operation).
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

/// Log-linear latency buckets over nanoseconds: values below 8 have a bucket each; above, each
/// power of two is split into 8 buckets (the top 3 bits after the leading one), so a bucket is at
/// most 12.5% wide. 320 buckets reach 2^40 ns (18 minutes); larger values land in the last one.
public enum LatencyBuckets {
    public static let count = 320
    static let subBits = 3
    static let sub = 1 << subBits

    @inline(__always)
    public static func index(_ ns: UInt64) -> Int {
        if ns < UInt64(sub) { return Int(ns) }
        let e = 63 - ns.leadingZeroBitCount                  // ns in [2^e, 2^(e+1)), e >= 3
        let s = Int((ns >> UInt64(e - subBits)) & UInt64(sub - 1))
        return min(sub + (e - subBits) * sub + s, count - 1)
    }

    /// The smallest value of bucket `i`.
    public static func lowerBound(_ i: Int) -> UInt64 {
        if i < sub { return UInt64(i) }
        let e = (i - sub) / sub + subBits, s = (i - sub) % sub
        return UInt64(sub + s) << UInt64(e - subBits)
    }

    /// The largest value of bucket `i`.
    public static func upperBound(_ i: Int) -> UInt64 {
        i + 1 >= count ? UInt64.max : lowerBound(i + 1) - 1
    }
}

/// Per-operation request and error counts and service-time histograms, updated with relaxed
/// atomics. A request's service time runs from the handler's entry to just before its reply is
/// written to /dev/fuse: decoding, the FileSystem (or control directory) call and building the
/// reply, not the kernel round trip. Cost: two vDSO clock reads and two relaxed adds (~40 ns).
public final class FuseStatistics: Sendable {
    final class Counter: Sendable {
        let count = Atomic<UInt64>(0)
        let errors = Atomic<UInt64>(0)
        let bytes = Atomic<UInt64>(0)
        let totalNanoseconds = Atomic<UInt64>(0)
        let maxNanoseconds = Atomic<UInt64>(0)
        let buckets: InlineArray<320, Atomic<UInt64>> = InlineArray { _ in Atomic<UInt64>(0) }
    }
    private let counters: [Counter]

    /// Notifications to the kernel to drop a dentry metafs evicted (KernelInvalidator).
    public final class Invalidations: Sendable {
        /// The kernel dropped its dentry.
        public let sent = Atomic<UInt64>(0)
        /// The kernel had no dentry for the name (ENOENT).
        public let notCached = Atomic<UInt64>(0)
        /// Not queued: the queue was full.
        public let dropped = Atomic<UInt64>(0)
        /// Any other error (the mount going away, say).
        public let failed = Atomic<UInt64>(0)
    }
    public let invalidations = Invalidations()

    public init() { counters = FuseOperation.allCases.map { _ in Counter() } }

    /// Monotonic nanoseconds.
    @inline(__always)
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    @inline(__always)
    public func count(_ op: FuseOperation) {
        counters[op.rawValue].count.wrappingAdd(1, ordering: .relaxed)
    }

    /// Counts a request and returns its start time for `end`.
    @inline(__always)
    public func begin(_ op: FuseOperation) -> UInt64 {
        count(op)
        return Self.now()
    }

    /// Records the service time of a request begun at `start`.
    @inline(__always)
    public func end(_ op: FuseOperation, _ start: UInt64) {
        record(op, nanoseconds: Self.now() &- start)
    }

    public func record(_ op: FuseOperation, nanoseconds ns: UInt64) {
        let c = counters[op.rawValue]
        c.buckets[LatencyBuckets.index(ns)].wrappingAdd(1, ordering: .relaxed)
        c.totalNanoseconds.wrappingAdd(ns, ordering: .relaxed)
        var current = c.maxNanoseconds.load(ordering: .relaxed)
        while ns > current {
            let (exchanged, original) = c.maxNanoseconds.compareExchange(expected: current, desired: ns, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
    }

    @inline(__always)
    public func error(_ op: FuseOperation) {
        counters[op.rawValue].errors.wrappingAdd(1, ordering: .relaxed)
    }
    @inline(__always)
    public func bytes(_ op: FuseOperation, _ n: Int) {
        counters[op.rawValue].bytes.wrappingAdd(UInt64(truncatingIfNeeded: n), ordering: .relaxed)
    }

    /// Service-time summary of one operation, in nanoseconds. Percentiles are the upper bound of
    /// the bucket holding that rank (so they over-state by at most 12.5%); max is exact.
    public struct Latency: Sendable, Equatable {
        public var samples: UInt64 = 0
        public var meanNanoseconds: UInt64 = 0
        public var p50: UInt64 = 0
        public var p90: UInt64 = 0
        public var p99: UInt64 = 0
        public var maxNanoseconds: UInt64 = 0
        /// Sample count per bucket (`LatencyBuckets`).
        public var buckets: [UInt64] = []

        public init() {}

        /// From bucket counts (index as `LatencyBuckets`), a total and the exact max.
        public init(buckets: [UInt64], totalNanoseconds: UInt64, maxNanoseconds: UInt64) {
            let n = buckets.reduce(0, +)
            samples = n
            self.buckets = buckets
            guard n > 0 else { return }
            meanNanoseconds = totalNanoseconds / n
            self.maxNanoseconds = maxNanoseconds
            func percentile(_ q: Double) -> UInt64 {
                let rank = max(1, UInt64((Double(n) * q).rounded(.up)))
                var seen: UInt64 = 0
                for (i, b) in buckets.enumerated() {
                    seen += b
                    if seen >= rank { return min(LatencyBuckets.upperBound(i), maxNanoseconds) }
                }
                return maxNanoseconds
            }
            p50 = percentile(0.50)
            p90 = percentile(0.90)
            p99 = percentile(0.99)
        }
    }

    public struct Snapshot: Sendable, Equatable {
        public var operation: FuseOperation
        public var count: UInt64
        public var errors: UInt64
        /// Bytes moved (read and write only).
        public var bytes: UInt64
        public var latency: Latency

        public init(operation: FuseOperation, count: UInt64, errors: UInt64, bytes: UInt64, latency: Latency = Latency()) {
            self.operation = operation; self.count = count; self.errors = errors; self.bytes = bytes; self.latency = latency
        }
    }

    public func snapshot() -> [Snapshot] {
        FuseOperation.allCases.map { op in
            let c = counters[op.rawValue]
            var buckets = [UInt64](repeating: 0, count: LatencyBuckets.count)
            for i in 0..<LatencyBuckets.count { buckets[i] = c.buckets[i].load(ordering: .relaxed) }
            let latency = Latency(buckets: buckets, totalNanoseconds: c.totalNanoseconds.load(ordering: .relaxed),
                                  maxNanoseconds: c.maxNanoseconds.load(ordering: .relaxed))
            return Snapshot(operation: op, count: c.count.load(ordering: .relaxed),
                            errors: c.errors.load(ordering: .relaxed), bytes: c.bytes.load(ordering: .relaxed),
                            latency: latency)
        }
    }

    /// Forgets every count and histogram (control: `reset_stats`), e.g. between benchmark phases.
    public func reset() {
        for c in counters {
            c.count.store(0, ordering: .relaxed)
            c.errors.store(0, ordering: .relaxed)
            c.bytes.store(0, ordering: .relaxed)
            c.totalNanoseconds.store(0, ordering: .relaxed)
            c.maxNanoseconds.store(0, ordering: .relaxed)
            for i in 0..<LatencyBuckets.count { c.buckets[i].store(0, ordering: .relaxed) }
        }
    }
}
