// The workload generator's machinery: phases run on several threads doing system calls directly
// (open, stat, rename, unlink, pwrite, ...), counting operations and unexpected errors, stopping at a
// count, a deadline, an error limit or an outside request (SIGINT), and publishing live counters
// for progress lines and for `metafs compare`'s sampler.

import Glibc
import MetaCache
import Synchronization

/// A stop request shared by the threads of a run (set from a signal handler: lock-free).
public final class WorkloadStop: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func request() { flag.store(true, ordering: .relaxed) }
    public var requested: Bool { flag.load(ordering: .relaxed) }
}

func monotonicNow() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// Live counters of a running workload, read from other threads (progress line, stats sampler).
public final class WorkloadMonitor: Sendable {
    public let workload: String
    public let label: String
    public let startTime: Double
    private let totalOps = Atomic<UInt64>(0)
    private let phaseOps = Atomic<UInt64>(0)
    private let errors = Atomic<UInt64>(0)
    private let phaseState: Mutex<(name: String, start: Double)>

    public init(workload: String, label: String = "") {
        self.workload = workload
        self.label = label
        let now = monotonicNow()
        startTime = now
        phaseState = Mutex(("setup", now))
    }

    public struct Snapshot: Sendable {
        public var workload: String
        public var label: String
        public var phase: String
        /// Seconds since the workload started / since the current phase started.
        public var elapsed: Double
        public var phaseElapsed: Double
        public var totalOps: UInt64
        public var phaseOps: UInt64
        public var errors: UInt64
    }

    public func snapshot() -> Snapshot {
        let now = monotonicNow()
        let (name, start) = phaseState.withLock { ($0.name, $0.start) }
        return Snapshot(workload: workload, label: label, phase: name, elapsed: now - startTime, phaseElapsed: now - start,
                        totalOps: totalOps.load(ordering: .relaxed), phaseOps: phaseOps.load(ordering: .relaxed),
                        errors: errors.load(ordering: .relaxed))
    }

    func beginPhase(_ name: String) {
        phaseState.withLock { $0 = (name, monotonicNow()) }
        phaseOps.store(0, ordering: .relaxed)
    }

    func count(_ n: UInt64) {
        totalOps.add(n, ordering: .relaxed)
        phaseOps.add(n, ordering: .relaxed)
    }

    func countError() { errors.add(1, ordering: .relaxed) }
}

/// One phase's figures.
public struct WorkloadPhaseResult: Sendable, Equatable {
    public var name: String
    public var ops: UInt64
    public var errors: UInt64
    public var seconds: Double
    public var bytes: UInt64
    /// Part of the workload's throughput (false for cleanup).
    public var measured: Bool
    public var opsPerSecond: Double { seconds > 0 ? Double(ops) / seconds : 0 }
    public init(name: String, ops: UInt64, errors: UInt64, seconds: Double, bytes: UInt64 = 0, measured: Bool = true) {
        self.name = name; self.ops = ops; self.errors = errors; self.seconds = seconds; self.bytes = bytes; self.measured = measured
    }
}

/// What a workload did.
public struct WorkloadResult: Sendable {
    public var workload: String
    public var label: String
    /// The parameters in words ("4000 files in 73 directories ...").
    public var summary: String
    public var seed: UInt64
    public var threads: Int
    /// The directory the workload worked in.
    public var directory: String
    public var phases: [WorkloadPhaseResult]
    /// The first unexpected errors, in words ("stat wl/f12: Input/output error").
    public var errorMessages: [String]
    /// Extra findings worth printing (e.g. torn reads seen while a block was being written).
    public var notes: [String]
    /// Stopped early by a stop request (SIGINT).
    public var interrupted: Bool

    var measuredPhases: [WorkloadPhaseResult] { phases.filter(\.measured) }
    public var ops: UInt64 { measuredPhases.reduce(0) { $0 + $1.ops } }
    public var seconds: Double { measuredPhases.reduce(0) { $0 + $1.seconds } }
    public var bytes: UInt64 { measuredPhases.reduce(0) { $0 + $1.bytes } }
    public var errors: UInt64 { phases.reduce(0) { $0 + $1.errors } }
    public var opsPerSecond: Double { seconds > 0 ? Double(ops) / seconds : 0 }
    public var succeeded: Bool { errors == 0 && !interrupted }
}

/// The context of one phase, shared by its threads.
final class PhaseContext: Sendable {
    let name: String
    let root: String
    let monitor: WorkloadMonitor
    let stopRequest: WorkloadStop
    let deadline: Double?
    let errorLimit: UInt64
    private let ops = Atomic<UInt64>(0)
    private let errors = Atomic<UInt64>(0)
    private let bytes = Atomic<UInt64>(0)
    private let messages = Mutex<[String]>([])
    private let noteList = Mutex<[String]>([])
    static let keptMessages = 20

    init(name: String, root: String, monitor: WorkloadMonitor, stop: WorkloadStop, deadline: Double?, errorLimit: UInt64 = 1000) {
        self.name = name; self.root = root; self.monitor = monitor; self.stopRequest = stop
        self.deadline = deadline; self.errorLimit = errorLimit
    }

    @inline(__always) func done(_ n: UInt64 = 1, bytes b: UInt64 = 0) {
        ops.add(n, ordering: .relaxed)
        if b > 0 { bytes.add(b, ordering: .relaxed) }
        monitor.count(n)
    }

    /// An unexpected result: counted, and the first ones kept in words.
    func error(_ message: String) {
        errors.add(1, ordering: .relaxed)
        monitor.countError()
        messages.withLock { if $0.count < Self.keptMessages { $0.append("\(name): \(message)") } }
    }

    /// A failed system call on `path` (shown relative to the mount point).
    func error(_ op: String, _ path: String, _ e: Int32, expected: String? = nil) {
        var shown = path
        if shown.hasPrefix(root + "/") { shown = String(shown.dropFirst(root.count + 1)) }
        let what = e == 0 ? "succeeded" : "\(String(cString: strerror(e))) (errno \(e))"
        error("\(op) \(shown): \(what)\(expected.map { ", expected \($0)" } ?? "")")
    }

    func note(_ text: String) { noteList.withLock { if !$0.contains(text) { $0.append(text) } } }

    /// True once the phase should end: a stop request, its deadline, or too many errors.
    var shouldStop: Bool {
        if stopRequest.requested { return true }
        if errors.load(ordering: .relaxed) >= errorLimit { return true }
        if let deadline, monotonicNow() >= deadline { return true }
        return false
    }

    var errorCount: UInt64 { errors.load(ordering: .relaxed) }
    var opCount: UInt64 { ops.load(ordering: .relaxed) }
    var byteCount: UInt64 { bytes.load(ordering: .relaxed) }
    var errorMessages: [String] { messages.withLock { $0 } }
    var notes: [String] { noteList.withLock { $0 } }
}

/// Runs `body(i)` on `count` threads (i = 0..<count) and waits for all of them.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    var threads: [pthread_t] = []
    for i in 0..<count {
        if let t = spawnThread({ body(i) }) {
            threads.append(t)
        } else {
            body(i)    // no thread: run it here rather than lose the work
        }
    }
    for t in threads { pthread_join(t, nil) }
}

/// Runs phases in order, collecting their results; a phase with errors ends the workload.
final class PhaseSequence {
    let root: String
    let monitor: WorkloadMonitor
    let stop: WorkloadStop
    let duration: Double?
    var results: [WorkloadPhaseResult] = []
    var messages: [String] = []
    var notes: [String] = []
    var failed = false

    init(root: String, monitor: WorkloadMonitor, stop: WorkloadStop, duration: Double?) {
        self.root = root; self.monitor = monitor; self.stop = stop; self.duration = duration
    }

    var interrupted: Bool { stop.requested }

    /// Runs one phase unless an earlier one failed or a stop was requested. `timed` phases end at
    /// the run's duration (when one was given).
    func phase(_ name: String, timed: Bool = false, measured: Bool = true, _ body: (PhaseContext) -> Void) {
        guard !failed, !stop.requested else { return }
        monitor.beginPhase(name)
        let start = monotonicNow()
        let ctx = PhaseContext(name: name, root: root, monitor: monitor, stop: stop,
                               deadline: timed ? duration.map { start + $0 } : nil)
        body(ctx)
        let r = WorkloadPhaseResult(name: name, ops: ctx.opCount, errors: ctx.errorCount, seconds: monotonicNow() - start,
                                    bytes: ctx.byteCount, measured: measured)
        results.append(r)
        messages += ctx.errorMessages
        notes += ctx.notes
        if r.errors > 0 { failed = true }
    }
}
