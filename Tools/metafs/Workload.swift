import ArgumentParser
import Glibc
import MetaCache
import MetaFS
import Synchronization

// `metafs workload NAME MOUNTPOINT [options]`: the named workloads of docs/WORKLOADS.md, driven by
// metafs's own generator (threads issuing system calls; Sources/MetaFS/Workloads).

struct Workload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a named metadata workload on a mounted metafs (or any directory).",
        discussion: """
        Each workload works in a fresh directory under MOUNTPOINT (wl-NAME-PID, or --dir), prints \
        its throughput (ops/s) per phase and its error count, and exits 1 on any unexpected error \
        (130 when interrupted). On a terminal it shows its progress. On a metafs mount it also \
        prints what the caches hold afterwards. See docs/WORKLOADS.md.
        """,
        subcommands: [TreeWorkload.self, NegativeWorkload.self, FragmentWorkload.self, ExtentsWorkload.self, ChurnWorkload.self])
}

struct WorkloadCommonOptions: ParsableArguments {
    @Argument(help: "The mount point (a metafs mount, or any directory for comparison).") var mountpoint: String
    @Flag(help: "Small sizes (a few seconds): the defaults of every count are scaled down.") var quick = false
    @Option(help: "Multiply the workload's main count (files, lookups or operations) by this factor.") var scale: Double = 1
    @Option(help: "Threads issuing system calls.") var threads = 4
    @Option(help: "Seed of the random choices (names, victims, offsets, orders).") var seed: UInt64 = 1
    @Option(help: "Upper bound in seconds on the timed phase (walks, lookups, hot passes, I/O, churn).") var duration: Double?
    @Option(help: "Setting shown in the progress line (e.g. policy=page).") var label = ""
    @Option(name: .customLong("dir"), help: "Name of the fresh directory to work in, under MOUNTPOINT (default wl-NAME-PID).") var directory: String?
    @Flag(help: "Remove the workload's directory at the end (not counted in the throughput).") var cleanup = false
    @Flag(help: "No progress line, even on a terminal.") var noProgress = false

    func validate() throws {
        guard threads >= 1 && threads <= 256 else { throw ValidationError("--threads must be 1...256") }
        if let duration, !(duration > 0) { throw ValidationError("--duration must be positive") }
        guard scale > 0 && scale <= 1000 else { throw ValidationError("--scale must be in (0, 1000]") }
        if let directory, directory.isEmpty || directory.contains("/") || directory == "." || directory == ".." {
            throw ValidationError("--dir must be a single name")
        }
    }

    var options: WorkloadOptions {
        var o = WorkloadOptions()
        o.threads = threads; o.seed = seed; o.duration = duration; o.label = label
        o.directory = directory; o.cleanup = cleanup
        return o
    }

    /// Runs the workload and reports; exits 1 on errors, 130 when interrupted.
    func run(_ given: WorkloadSpec) throws {
        let spec = scale == 1 ? given : given.scaled(by: scale)
        if let problem = spec.validate() { throw ValidationError(problem) }
        let result: WorkloadResult
        do throws(CLIError) {
            result = try WorkloadCLI.run(spec, mountpoint: mountpoint, options: options, progress: !noProgress)
        } catch let e {
            Support.printError(e.message)
            throw ExitCode(1)
        }
        if result.interrupted { throw ExitCode(130) }
        if !result.succeeded { throw ExitCode(1) }
    }
}

struct TreeWorkload: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tree",
        abstract: "A huge tree of small or empty files, created, then walked with readdir + stat (as find -ls).")
    @OptionGroup var common: WorkloadCommonOptions
    @Option(help: "Files to create (default 60000; --quick 3000).") var files: Int?
    @Option(help: "Subdirectories per directory (default 10; --quick 6).") var fanout: Int?
    @Option(help: "Directory levels above the files (default 2).") var depth: Int?
    @Option(help: "Walks over the tree after creating it (default 2; --quick 1).") var walks: Int?
    @Option(help: "Bytes written into each file (default 0).") var fileSize: Int?

    func run() throws {
        guard case .tree(var p) = WorkloadSpec.defaults("tree", quick: common.quick)! else { return }
        if let files { p.files = files }; if let fanout { p.fanout = fanout }; if let depth { p.depth = depth }
        if let walks { p.walks = walks }; if let fileSize { p.fileSize = fileSize }
        try common.run(.tree(p))
    }
}

struct NegativeWorkload: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "negative",
        abstract: "Lookups (stat) of random names that do not exist, flooding the cache with negative dentries.")
    @OptionGroup var common: WorkloadCommonOptions
    @Option(help: "Lookups in all (default 200000; --quick 8000).") var lookups: Int?
    @Option(help: "Directories the names are spread over (default 16).") var directories: Int?
    @Option(help: "Length of the names in bytes, 8...255 (default 24; over 40 they use the name slabs).") var nameLength: Int?
    @Option(help: "Percent of lookups that repeat an earlier name (default 0).") var reuse: Double?

    func run() throws {
        guard case .negative(var p) = WorkloadSpec.defaults("negative", quick: common.quick)! else { return }
        if let lookups { p.lookups = lookups }; if let directories { p.directories = directories }
        if let nameLength { p.nameLength = nameLength }; if let reuse { p.reusePercent = reuse }
        try common.run(.negative(p))
    }
}

struct FragmentWorkload: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fragment",
        abstract: "Many files created, a random majority deleted, the survivors kept hot with stat: live objects scattered thinly over many slab pages.")
    @OptionGroup var common: WorkloadCommonOptions
    @Option(help: "Files to create (default 50000; --quick 3000).") var files: Int?
    @Option(help: "Percent of the files kept (default 10).") var keep: Double?
    @Option(help: "stat passes over the survivors (default 10; --quick 3).") var passes: Int?
    @Option(help: "Files per directory (default 1000).") var filesPerDirectory: Int?

    func run() throws {
        guard case .fragment(var p) = WorkloadSpec.defaults("fragment", quick: common.quick)! else { return }
        if let files { p.files = files }; if let keep { p.keepPercent = keep }; if let passes { p.passes = passes }
        if let filesPerDirectory { p.filesPerDirectory = filesPerDirectory }
        try common.run(.fragment(p))
    }
}

struct ExtentsWorkload: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "extents",
        abstract: "Sparse files written in small scattered pieces (extents that cannot merge) by several threads reading and writing.")
    @OptionGroup var common: WorkloadCommonOptions
    @Option(help: "Files (default 8; --quick 4).") var files: Int?
    @Option(help: "Size of each sparse file: bytes or K/M/G (default 32M; --quick 4M).") var fileSize: String?
    @Option(help: "Bytes per read or write (default 4096).") var blockSize: Int?
    @Option(help: "Write every Nth block only, leaving holes (default 2).") var stride: Int?
    @Option(help: "Reads and writes in all (default 400000; --quick 4000).") var ops: Int?
    @Option(help: "Percent of the operations that are reads, verified (default 50).") var readPercent: Double?

    func run() throws {
        guard case .extents(var p) = WorkloadSpec.defaults("extents", quick: common.quick)! else { return }
        if let files { p.files = files }
        if let fileSize {
            do { p.fileSize = Int(clamping: try ControlArgument.size(Substring(fileSize))) } catch {
                throw ValidationError("bad --file-size '\(fileSize)': \(error.message)")
            }
        }
        if let blockSize { p.blockSize = blockSize }; if let stride { p.stride = stride }; if let ops { p.ops = ops }
        if let readPercent { p.readPercent = readPercent }
        try common.run(.extents(p))
    }
}

struct ChurnWorkload: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "churn",
        abstract: "Creates, renames, stats and unlinks mixed on several threads, leaving much metadata dirty.")
    @OptionGroup var common: WorkloadCommonOptions
    @Option(help: "Operations in all (default 60000; --quick 4000).") var ops: Int?
    @Option(help: "Files each thread keeps at most (default 3000; --quick 500).") var maxFiles: Int?
    @Option(help: "Directories per thread (default 4).") var directories: Int?
    @Option(help: "Bytes written into each new file (default 128).") var writeBytes: Int?
    @Option(help: "Weights of create, rename, stat, unlink as C,R,S,U percentages (default 35,20,30,15).") var mix: String?

    func run() throws {
        guard case .churn(var p) = WorkloadSpec.defaults("churn", quick: common.quick)! else { return }
        if let ops { p.ops = ops }; if let maxFiles { p.maxFiles = maxFiles }; if let directories { p.directories = directories }
        if let writeBytes { p.writeBytes = writeBytes }
        if let mix {
            let w = mix.split(separator: ",").map { Double($0) }
            guard w.count == 4, let c = w[0], let r = w[1], let s = w[2], let u = w[3] else {
                throw ValidationError("--mix takes four numbers: create,rename,stat,unlink")
            }
            (p.createPercent, p.renamePercent, p.statPercent, p.unlinkPercent) = (c, r, s, u)
        }
        try common.run(.churn(p))
    }
}

/// The stop request SIGINT/SIGTERM raise (a signal handler only stores an atomic flag).
let interruptRequest = WorkloadStop()

enum WorkloadCLI {
    /// SIGINT and SIGTERM request a stop. They are also unblocked: a process started from a
    /// thread that blocks them (a libdispatch worker, say) inherits that mask, and a blocked
    /// SIGINT would leave the run unstoppable but by SIGKILL.
    static func installInterruptHandlers() {
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGINT, SIGTERM] {
            signal(s) { _ in interruptRequest.request() }
            sigaddset(&set, s)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// `[tree policy=page] walk  12.3 s  14839 ops/s  120200 ops  0 errors`
    static func progressLine(_ s: WorkloadMonitor.Snapshot, rate: Double) -> String {
        let who = s.label.isEmpty ? s.workload : "\(s.workload) \(s.label)"
        return "[\(who)] \(s.phase)  \(Report.fixed(s.elapsed, 1)) s  \(Int(rate.rounded())) ops/s  \(s.phaseOps) ops  \(s.errors) error\(s.errors == 1 ? "" : "s")"
    }

    /// A thread that redraws the progress line on stdout (a terminal) twice a second until `done`.
    final class ProgressLine: Sendable {
        let monitor: WorkloadMonitor
        let done = Atomic<Bool>(false)
        private let thread = Mutex<pthread_t?>(nil)
        init(monitor: WorkloadMonitor) { self.monitor = monitor }

        func start() {
            if let t = spawnThread({ [self] in loop() }) { thread.withLock { $0 = t } }
        }

        func loop() {
            var last = monitor.snapshot()
            while !done.load(ordering: .relaxed) {
                for _ in 0..<5 where !done.load(ordering: .relaxed) { usleep(100_000) }
                if done.load(ordering: .relaxed) { break }
                let s = monitor.snapshot()
                let dt = s.elapsed - last.elapsed
                let rate = s.phase == last.phase && dt > 0 ? Double(s.phaseOps &- last.phaseOps) / dt
                    : s.phaseElapsed > 0 ? Double(s.phaseOps) / s.phaseElapsed : 0
                last = s
                writeOut("\r\u{1B}[K" + progressLine(s, rate: rate))
            }
        }

        func stop() {
            done.store(true, ordering: .relaxed)
            if let t = thread.withLock({ $0 }) { pthread_join(t, nil) }
            writeOut("\r\u{1B}[K")
        }
    }

    static func writeOut(_ text: String) {
        var t = text
        t.withUTF8 { b in
            var off = 0
            while off < b.count {
                let n = write(1, b.baseAddress! + off, b.count - off)
                if n <= 0 { if errno == EINTR { continue }; return }
                off += n
            }
        }
    }

    /// stats.json of the metafs mounted at `real`, if it is one.
    static func statsSnapshot(controlDirectory: String?) -> StatsSnapshot? {
        guard let controlDirectory, let text = Support.readFile(controlDirectory + "/stats.json") else { return nil }
        return try? StatsSnapshot.parse(text)
    }

    static func run(_ spec: WorkloadSpec, mountpoint: String, options: WorkloadOptions, progress: Bool) throws(CLIError) -> WorkloadResult {
        guard let real = Support.realPath(mountpoint) else { throw CLIError("\(mountpoint): \(Support.errnoString())") }
        var st = stat()
        guard stat(real, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else { throw CLIError("\(mountpoint) is not a directory") }
        let isMetafs = Support.metafsMount(at: real) != nil
        let control: String? = isMetafs ? real + "/" + ControlDirectory.name : nil
        let before = statsSnapshot(controlDirectory: control)

        print("metafs workload \(spec.name) on \(real)\(isMetafs ? " (metafs)" : " (not metafs: no cache figures)"): \(spec.summary)")
        print("  seed \(options.seed), \(options.threads) thread\(options.threads == 1 ? "" : "s"), directory \(options.directory ?? "wl-\(spec.name)-\(getpid())")"
              + (options.duration.map { ", at most \(Report.fixed($0, 1)) s per timed phase" } ?? ""))
        installInterruptHandlers()
        let monitor = WorkloadMonitor(workload: spec.name, label: options.label)
        let line = progress && isTerminal(1) ? ProgressLine(monitor: monitor) : nil
        line?.start()
        let result = WorkloadRunner.run(spec, at: real, options: options, stop: interruptRequest, monitor: monitor)
        line?.stop()
        print(report(result), terminator: "")
        if let control, let after = statsSnapshot(controlDirectory: control) {
            print(cacheSummary(before: before, after: after), terminator: "")
        }
        print(resultLine(result))
        return result
    }

    static func report(_ r: WorkloadResult) -> String {
        var out = "  " + Report.pad("phase", 10, left: true) + Report.pad("ops", 10) + Report.pad("seconds", 9) + Report.pad("ops/s", 10)
            + Report.pad("MiB/s", 8) + Report.pad("errors", 8) + "\n"
        func row(_ name: String, _ ops: UInt64, _ secs: Double, _ bytes: UInt64, _ errors: UInt64) -> String {
            let mibs = bytes == 0 || secs <= 0 ? "-" : Report.fixed(Double(bytes) / 1048576 / secs, 1)
            return "  " + Report.pad(name, 10, left: true) + Report.pad("\(ops)", 10) + Report.pad(Report.fixed(secs, 2), 9)
                + Report.pad(secs > 0 ? "\(Int((Double(ops) / secs).rounded()))" : "-", 10) + Report.pad(mibs, 8) + Report.pad("\(errors)", 8) + "\n"
        }
        for p in r.phases { out += row(p.name + (p.measured ? "" : "*"), p.ops, p.seconds, p.bytes, p.errors) }
        out += row("total", r.ops, r.seconds, r.bytes, r.errors)
        if r.phases.contains(where: { !$0.measured }) { out += "  (* not counted in the total)\n" }
        for n in r.notes { out += "  note: \(n)\n" }
        if r.interrupted { out += "  interrupted: the figures cover the work done before the interrupt\n" }
        if !r.errorMessages.isEmpty {
            out += "  unexpected errors (\(r.errors)\(r.errors > UInt64(r.errorMessages.count) ? ", first \(r.errorMessages.count) shown" : "")):\n"
            for m in r.errorMessages { out += "    \(m)\n" }
        }
        return out
    }

    /// The caches after the workload (slabtop's figures, per cache), with the change in slab memory.
    static func cacheSummary(before: StatsSnapshot?, after: StatsSnapshot) -> String {
        var out = "caches after the workload (from stats.json):\n"
        out += "  " + Report.pad("cache", 18, left: true) + Report.pad("active", 10) + Report.pad("total", 10) + Report.pad("use", 6)
            + Report.pad("slabs", 8) + Report.pad("negative", 9) + Report.pad("dirty", 8) + Report.pad("memory", 11) + "\n"
        for c in after.caches where c.totalObjects > 0 || c.activeObjects > 0 {
            let use = c.totalObjects == 0 ? "-" : "\(Int((Double(c.activeObjects) * 100 / Double(c.totalObjects)).rounded()))%"
            out += "  " + Report.pad(c.name, 18, left: true) + Report.pad("\(c.activeObjects)", 10) + Report.pad("\(c.totalObjects)", 10)
                + Report.pad(use, 6) + Report.pad("\(c.totalSlabs)", 8) + Report.pad("\(c.negative)", 9) + Report.pad("\(c.dirty)", 8)
                + Report.pad(ControlRendering.humanBytes(c.slabBytes), 11) + "\n"
        }
        var line = "  slab \(ControlRendering.humanBytes(after.slabBytes))"
        if let before {
            let d = Int64(after.slabBytes) - Int64(before.slabBytes)
            line += " (\(d >= 0 ? "+" : "-")\(ControlRendering.humanBytes(UInt64(abs(d)))))"
            let lookups = (after.hits &- before.hits) &+ (after.misses &- before.misses)
            if lookups > 0 { line += ", hit rate \(Report.fixed(Double(after.hits &- before.hits) * 100 / Double(lookups), 1))%" }
        }
        line += ", rss \(ControlRendering.humanBytes(after.rssBytes))"
            + (after.rssAnonBytes.map { " (anonymous \(ControlRendering.humanBytes($0)))" } ?? "")
            + ", dirty objects \(after.dirty)"
        if let b = after.budgetBytes, b > 0 { line += ", budget \(ControlRendering.humanBytes(b))" }
        return out + line + "\n"
    }

    /// One machine-readable line: `result: workload=tree ops=... seconds=... ops_per_s=... errors=0`.
    static func resultLine(_ r: WorkloadResult) -> String {
        "result: workload=\(r.workload) ops=\(r.ops) seconds=\(Report.fixed(r.seconds, 3)) ops_per_s=\(Int(r.opsPerSecond.rounded())) errors=\(r.errors)"
            + (r.interrupted ? " interrupted=1" : "")
    }
}
