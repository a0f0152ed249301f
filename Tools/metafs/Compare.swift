import ArgumentParser
import Glibc
import MetaCache
import MetaFS
import Synchronization

// `metafs compare`: runs named workloads under several reclaim settings, each on a fresh store and
// mount, samples stats.json through each run, and writes a report directory (docs/WORKLOADS.md):
//
//   REPORT/report.md        how it was run, a table per workload, the charts
//   REPORT/results.csv      one line per (workload, setting): the table's figures
//   REPORT/samples.csv      every sample of stats.json (totals), all runs
//   REPORT/charts/          WORKLOAD-slab-memory.png, WORKLOAD-pages-freed.png, WORKLOAD-rss.png,
//                           their gnuplot scripts (.gp) and data (WORKLOAD.SETTING.dat)
//   REPORT/runs/WORKLOAD/SETTING/  daemon.log, mount.out, workload.txt, stats-end.json,
//                           slabinfo-end.txt, shrink.txt, fsck.txt
//
// Nothing stays mounted: every run unmounts in a defer, and SIGINT/SIGTERM only stop the workload.

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare reclaim settings on the named workloads and write a report with tables and charts.",
        discussion: """
        Each (workload, setting) pair runs on a fresh store, mounted with the setting's options \
        (--policy NAME --segregate on|off --merge on|off --dirty skip|writeback \
        --kernel-invalidate on|off) and the common \
        --budget. A setting is 'default' (no option) or [LABEL:]key=value[,key=value...], e.g. \
        --setting policy=lru --setting page-seg:policy=page,segregate=on. Options this build's \
        mount does not know are refused before anything runs. Exit status: 0 when every run \
        succeeded, 1 on workload errors, fsck findings or a failed mount, 130 when interrupted.
        """)

    @Option(help: "Workloads to run, comma separated (\(WorkloadSpec.names.joined(separator: ", ")).") var workloads = WorkloadSpec.names.joined(separator: ",")
    @Option(name: .customLong("setting"), help: ArgumentHelp("A reclaim setting (may repeat; default: policy=lru and policy=page).", valueName: "setting"))
    var settings: [String] = []
    @Option(help: "Memory budget of the caches in every run (mount option --budget).") var budget: String?
    @Option(help: "After each workload, reclaim this much through control: shrink AMOUNT (N objects, N%, or a size).") var shrink: String?
    @Flag(help: "The workloads' --quick sizes.") var quick = false
    @Option(help: "Multiply each workload's main count (files, lookups or operations) by this factor.") var scale: Double = 1
    @Option(help: "Workload threads.") var threads = 4
    @Option(help: "Workload seed (the same in every run).") var seed: UInt64 = 1
    @Option(help: "Upper bound in seconds on each workload's timed phase.") var duration: Double?
    @Option(help: "Seconds between samples of stats.json.") var interval: Double = 0.25
    @Option(help: "Seconds of sampling after the workload (and the shrink), for background reclaim to act.") var settle: Double = 1
    @Option(help: "Report directory (default ./metafs-report-YYYYMMDD-HHMMSS).") var report: String?
    @Option(help: "Where the stores and mount points go (default a fresh /tmp/metafs-compare.XXXXXX).") var workDir: String?
    @Option(help: "Size of each fresh store.") var storeSize = "2G"
    @Option(help: "Chart format: png or svg.") var chartFormat = "png"
    @Flag(help: "Write no charts.") var noCharts = false
    @Flag(help: "Do not install gnuplot-nox with apt-get when gnuplot is missing.") var noInstall = false
    @Flag(help: "Keep the stores (default: removed after each run's fsck).") var keepStores = false
    @Option(name: .customLong("mount-option"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("An extra argument for every metafs mount (may repeat), e.g. --mount-option=--threads=4.", valueName: "arg"))
    var mountOptions: [String] = []

    func validate() throws {
        guard threads >= 1 && threads <= 256 else { throw ValidationError("--threads must be 1...256") }
        guard interval >= 0.05 && interval <= 60 else { throw ValidationError("--interval must be 0.05...60 seconds") }
        guard settle >= 0 && settle <= 600 else { throw ValidationError("--settle must be 0...600 seconds") }
        if let duration, !(duration > 0) { throw ValidationError("--duration must be positive") }
        guard scale > 0 && scale <= 1000 else { throw ValidationError("--scale must be in (0, 1000]") }
        guard Gnuplot.Format(rawValue: chartFormat) != nil else { throw ValidationError("--chart-format must be png or svg") }
    }

    func run() throws {
        let plan: ComparePlan
        do throws(CLIError) {
            plan = try makePlan()
        } catch let e {
            Support.printError(e.message)
            throw ExitCode(1)
        }
        let code = CompareRunner(plan: plan).run()
        if code != 0 { throw ExitCode(code) }
    }

    /// Everything checked before the first mount: names, settings, that this build's mount takes
    /// the options, that control takes the shrink command, the store size.
    func makePlan() throws(CLIError) -> ComparePlan {
        var specs: [WorkloadSpec] = []
        for name in workloads.split(separator: ",").map({ String($0).trimmingCharacters() }) where !name.isEmpty {
            guard let spec = WorkloadSpec.defaults(name, quick: quick)?.scaled(by: scale) else {
                throw CLIError("unknown workload '\(name)' (known: \(WorkloadSpec.names.joined(separator: ", ")))")
            }
            if !specs.contains(where: { $0.name == spec.name }) { specs.append(spec) }
        }
        guard !specs.isEmpty else { throw CLIError("--workloads names no workload") }
        var parsed: [CompareSetting] = []
        for s in settings.isEmpty ? ["policy=lru", "policy=page"] : settings {
            let setting: CompareSetting
            do { setting = try CompareSetting.parse(s) } catch { throw CLIError(error.message) }
            guard !parsed.contains(where: { $0.fileName == setting.fileName }) else {
                throw CLIError("two settings share the label '\(setting.label)': give one a LABEL: prefix")
            }
            parsed.append(setting)
        }
        var budgetArgs: [String] = []
        if let budget {
            do { _ = try ControlArgument.size(Substring(budget)) } catch { throw CLIError("bad --budget '\(budget)': \(error.message)") }
            budgetArgs = ["--budget", budget]
        }
        // This build's mount must accept every option (the reclaim options come with issue 4).
        for s in parsed {
            let args = s.mountArguments + budgetArgs + mountOptions
            do {
                _ = try Mount.parse(["/nonexistent.store", "/nonexistent.mnt"] + args)
            } catch {
                let why = Mount.message(for: error)
                throw CLIError("setting '\(s.label)': this build's `metafs mount` does not accept \(args.joined(separator: " ")): \(why)\n"
                    + "  (--policy, --segregate, --merge, --dirty and --budget are the reclaim work's mount options; "
                    + "without them, compare the build's own behaviour with --setting default and no --budget)")
            }
        }
        if let shrink {
            do { _ = try ControlCommandParser.parse("shrink \(shrink)") } catch {
                throw CLIError("--shrink \(shrink): this build's control file does not take 'shrink \(shrink)': \(error.message)")
            }
        }
        let storeBytes: UInt64
        do { storeBytes = try ControlArgument.size(Substring(storeSize)) } catch { throw CLIError("bad --store-size '\(storeSize)': \(error.message)") }
        guard storeBytes >= 64 << 20 else { throw CLIError("--store-size must be at least 64M") }

        var options = WorkloadOptions()
        options.threads = threads; options.seed = seed; options.duration = duration
        let reportDir = Support.absolutePath(report ?? "metafs-report-\(CompareRunner.timestamp())")
        return ComparePlan(workloads: specs, settings: parsed, budgetArguments: budgetArgs, mountOptions: mountOptions,
                           shrink: shrink, options: options, interval: interval, settle: settle, reportDirectory: reportDir,
                           workDirectory: workDir.map(Support.absolutePath), storeBytes: storeBytes,
                           chartFormat: noCharts ? nil : Gnuplot.Format(rawValue: chartFormat)!, installGnuplot: !noInstall,
                           keepStores: keepStores, commandLine: CommandLine.arguments.joined(separator: " "))
    }
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}

struct ComparePlan {
    var workloads: [WorkloadSpec]
    var settings: [CompareSetting]
    var budgetArguments: [String]
    var mountOptions: [String]
    var shrink: String?
    var options: WorkloadOptions
    var interval: Double
    var settle: Double
    var reportDirectory: String
    var workDirectory: String?
    var storeBytes: UInt64
    var chartFormat: Gnuplot.Format?
    var installGnuplot: Bool
    var keepStores: Bool
    var commandLine: String
}

/// The sampler's view of where a run is.
final class RunPhase: Sendable {
    private let state = Mutex<(phase: String, monitor: WorkloadMonitor?)>(("mount", nil))
    func set(_ phase: String) { state.withLock { $0 = (phase, nil) } }
    func follow(_ monitor: WorkloadMonitor) { state.withLock { $0 = ("", monitor) } }
    func current() -> (phase: String, ops: UInt64) {
        let (phase, monitor) = state.withLock { ($0.phase, $0.monitor) }
        if let monitor { let s = monitor.snapshot(); return (s.phase, s.totalOps) }
        return (phase, 0)
    }
}

/// Samples stats.json every interval on its own thread.
final class StatsSampler: Sendable {
    let statsPath: String
    let setting: String
    let workload: String
    let interval: Double
    let start: Double
    let phase: RunPhase
    private let samples = Mutex<[CompareSample]>([])
    private let lastOps = Atomic<UInt64>(0)
    private let failures = Atomic<Int>(0)
    private let lastFailure = Mutex<String>("")
    private let done = Atomic<Bool>(false)
    private let thread = Mutex<pthread_t?>(nil)

    init(statsPath: String, setting: String, workload: String, interval: Double, phase: RunPhase) {
        self.statsPath = statsPath; self.setting = setting; self.workload = workload; self.interval = interval
        self.phase = phase; start = Support.monotonicSeconds()
    }

    /// Takes one sample now (false if stats.json could not be read or parsed).
    @discardableResult
    func sample() -> Bool {
        let t = Support.monotonicSeconds() - start
        var (name, ops) = phase.current()
        if ops == 0 { ops = lastOps.load(ordering: .relaxed) } else { lastOps.store(ops, ordering: .relaxed) }
        let s: StatsSnapshot
        do throws(CLIError) {
            let bytes = try Support.readBytes(statsPath)
            do { s = try StatsSnapshot.parse(String(decoding: bytes, as: UTF8.self)) } catch { throw CLIError(error.message) }
        } catch let e {
            failures.add(1, ordering: .relaxed)
            lastFailure.withLock { $0 = "at \(Report.fixed(t, 2)) s (\(name)): \(e.message)" }
            return false
        }
        let sample = CompareSample(setting: setting, workload: workload, phase: name, t: t, workloadOps: ops, stats: s)
        samples.withLock { $0.append(sample) }
        return true
    }

    func startThread() {
        let t = spawnThread { [self] in
            var next = Support.monotonicSeconds() + interval
            while !done.load(ordering: .relaxed) {
                let now = Support.monotonicSeconds()
                if now >= next {
                    sample()
                    next += interval
                    if next < now { next = now + interval }
                } else {
                    usleep(UInt32(min(next - now, 0.05) * 1e6))
                }
            }
        }
        if let t { thread.withLock { $0 = t } }
    }

    func stop() {
        done.store(true, ordering: .relaxed)
        if let t = thread.withLock({ $0 }) { pthread_join(t, nil) }
    }

    var collected: [CompareSample] { samples.withLock { $0 } }
    var failedReads: Int { failures.load(ordering: .relaxed) }
    var lastFailedRead: String { lastFailure.withLock { $0 } }
}

/// Runs a program (PATH search) with its output appended to `output` (or /dev/null), and waits.
/// Returns the exit status (128+N for a signal, -1 if it could not start). The program runs in a
/// process group of its own, so a Ctrl-C at the terminal reaches compare only, which then finishes
/// the mount or unmount under way before it cleans up.
@discardableResult
func runProgram(_ args: [String], output: String? = nil, environment extra: [String] = []) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    // The child starts with SIGINT/SIGTERM at their defaults, whatever this process installed.
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for s in [SIGINT, SIGTERM, SIGPIPE] { sigaddset(&defaults, s) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    posix_spawnattr_setpgroup(&attr, 0)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
    var env: [String] = []
    var e = environ
    while let p = e.pointee { env.append(String(cString: p)); e += 1 }
    env += extra
    var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    var cenv: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) }; for p in cenv { free(p) } }
    var pid: pid_t = 0
    guard posix_spawnp(&pid, args[0], &actions, &attr, &cargs, &cenv) == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        if errno != EINTR { return -1 }
    }
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

struct CompareRunner {
    let plan: ComparePlan

    static func timestamp() -> String {
        var t = time(nil)
        var tmv = tm()
        localtime_r(&t, &tmv)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tmv.tm_year + 1900)\(two(tmv.tm_mon + 1))\(two(tmv.tm_mday))-\(two(tmv.tm_hour))\(two(tmv.tm_min))\(two(tmv.tm_sec))"
    }

    static func makeDirectories(_ path: String) -> Bool {
        var p = ""
        for part in path.split(separator: "/") {
            p += "/" + part
            if mkdir(p, 0o755) != 0 && errno != EEXIST { return false }
        }
        return true
    }

    static func writeFile(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { Support.eprint("metafs: cannot write \(path): \(Support.errnoString())\n"); return }
        defer { close(fd) }
        var t = text
        t.withUTF8 { b in
            var off = 0
            while off < b.count {
                let n = write(fd, b.baseAddress! + off, b.count - off)
                if n <= 0 { if errno == EINTR { continue }; return }
                off += n
            }
        }
    }

    static func say(_ text: String) { WorkloadCLI.writeOut(text + "\n") }

    /// Runs everything; returns the exit status.
    func run() -> Int32 {
        let reportDir = plan.reportDirectory
        guard Self.makeDirectories(reportDir + "/runs"), Self.makeDirectories(reportDir + "/charts") else {
            Support.printError("cannot create the report directory \(reportDir): \(Support.errnoString())")
            return 1
        }
        let work: String
        if let w = plan.workDirectory {
            guard Self.makeDirectories(w) else { Support.printError("cannot create \(w): \(Support.errnoString())"); return 1 }
            work = w
        } else {
            var template = Array("/tmp/metafs-compare.XXXXXX".utf8CString)
            guard let d = mkdtemp(&template) else { Support.printError("mkdtemp: \(Support.errnoString())"); return 1 }
            work = String(cString: d)
        }
        WorkloadCLI.installInterruptHandlers()
        Self.say("metafs compare: \(plan.workloads.map(\.name).joined(separator: ", ")) under \(plan.settings.map(\.label).joined(separator: ", "))"
                 + (plan.budgetArguments.isEmpty ? "" : ", budget \(plan.budgetArguments[1])") + (plan.shrink.map { ", shrink \($0) after each" } ?? ""))
        Self.say("  report in \(reportDir), stores in \(work)")

        var runs: [CompareRun] = []
        var failures: [String] = []
        var mountFailed = false
        outer: for spec in plan.workloads {
            for setting in plan.settings {
                if interruptRequest.requested { break outer }
                switch runOne(spec, setting, work: work) {
                case .success(let run, let problems):
                    runs.append(run)
                    failures += problems
                case .failure(let message):
                    failures.append(message)
                    Support.printError(message)
                    mountFailed = true
                    break outer
                }
            }
        }
        if plan.workDirectory == nil && !plan.keepStores { rmdir(work) }

        let rows = runs.map(CompareRow.compute)
        let allSamples = runs.flatMap(\.samples)
        Self.writeFile(reportDir + "/samples.csv", SampleCSV.render(allSamples))
        Self.writeFile(reportDir + "/results.csv", CompareTable.resultsCSV(rows))
        var charts: [String: [String]] = [:]
        if let format = plan.chartFormat, !runs.isEmpty {
            charts = drawCharts(runs, format: format, reportDir: reportDir)
        }
        Self.writeFile(reportDir + "/report.md", markdown(rows, charts: charts, failures: failures))
        Self.say("")
        for spec in plan.workloads {
            let r = rows.filter { $0.workload == spec.name }
            if !r.isEmpty { Self.say(CompareTable.text(workload: "\(spec.name): \(spec.summary)", r)) }
        }
        if !failures.isEmpty {
            Self.say("problems:")
            for f in failures { Self.say("  " + f) }
        }
        Self.say("report: \(reportDir)/report.md (results.csv, samples.csv, charts/, runs/)")
        if interruptRequest.requested { Self.say("interrupted: the report covers the runs that finished"); return 130 }
        return failures.isEmpty && !mountFailed ? 0 : 1
    }

    enum Outcome {
        case success(CompareRun, [String])
        case failure(String)
    }

    /// One workload under one setting on a fresh store.
    func runOne(_ spec: WorkloadSpec, _ setting: CompareSetting, work: String) -> Outcome {
        let name = "\(spec.name)/\(setting.label)"
        let runDir = plan.reportDirectory + "/runs/" + spec.name + "/" + setting.fileName
        let dir = work + "/" + spec.name + "." + setting.fileName
        let store = dir + "/store", mnt = dir + "/mnt", pidFile = dir + "/daemon.pid"
        guard Self.makeDirectories(runDir), Self.makeDirectories(mnt) else {
            return .failure("\(name): cannot create \(runDir) or \(mnt): \(Support.errnoString())")
        }
        unlink(store)
        do throws(CLIError) {
            try StoreGlue.create(path: store, size: plan.storeBytes, inodeCount: nil, rootUID: getuid(), rootGID: getgid())
        } catch let e {
            return .failure("\(name): \(e.message)")
        }
        let exe = Support.realPath("/proc/self/exe") ?? CommandLine.arguments[0]
        let mountArgs = [exe, "mount", store, mnt, "--pid-file", pidFile, "--log", runDir + "/daemon.log"]
            + setting.mountArguments + plan.budgetArguments + plan.mountOptions
        Self.writeFile(runDir + "/mount.out", "$ " + mountArgs.joined(separator: " ") + "\n")
        let status = runProgram(mountArgs, output: runDir + "/mount.out")
        defer {
            unmount(mnt, pidFile: pidFile)
            if !plan.keepStores { unlink(store); unlink(store + ".log"); rmdir(mnt); unlink(pidFile); rmdir(dir) }
        }
        guard status == 0, Support.metafsMount(at: mnt) != nil else {
            let out = Support.readFile(runDir + "/mount.out") ?? ""
            return .failure("\(name): the mount failed (status \(status)):\n\(out)")
        }
        if interruptRequest.requested { return .failure("\(name): interrupted") }

        let control = mnt + "/" + ControlDirectory.name
        let phase = RunPhase()
        let sampler = StatsSampler(statsPath: control + "/stats.json", setting: setting.label, workload: spec.name,
                                   interval: plan.interval, phase: phase)
        sampler.sample()
        sampler.startThread()

        var options = plan.options
        options.label = setting.label
        options.directory = "wl-\(spec.name)"
        let monitor = WorkloadMonitor(workload: spec.name, label: setting.label)
        phase.follow(monitor)
        let line = isatty(1) == 1 ? WorkloadCLI.ProgressLine(monitor: monitor) : nil
        line?.start()
        let result = WorkloadRunner.run(spec, at: mnt, options: options, stop: interruptRequest, monitor: monitor)
        line?.stop()
        var problems: [String] = []
        Self.writeFile(runDir + "/workload.txt", "\(spec.name): \(spec.summary)\nsetting \(setting.label)\n" + WorkloadCLI.report(result) + WorkloadCLI.resultLine(result) + "\n")
        if result.errors > 0 {
            problems.append("\(name): \(result.errors) unexpected error\(result.errors == 1 ? "" : "s"), first: \(result.errorMessages.first ?? "?") (see runs/\(spec.name)/\(setting.fileName)/workload.txt)")
        }

        var shrinkSeconds: Double?
        if let shrink = plan.shrink, !interruptRequest.requested {
            phase.set("shrink")
            let t0 = Support.monotonicSeconds()
            let (ok, text) = controlCommand(control + "/control", "shrink \(shrink)")
            shrinkSeconds = Support.monotonicSeconds() - t0
            Self.writeFile(runDir + "/shrink.txt", "shrink \(shrink): \(ok ? "ok" : "failed") in \(Report.fixed(shrinkSeconds! * 1000, 1)) ms\n\(text)")
            if !ok { problems.append("\(name): shrink \(shrink) failed: \(text)") }
        }
        phase.set("settle")
        let settleEnd = Support.monotonicSeconds() + plan.settle
        while Support.monotonicSeconds() < settleEnd && !interruptRequest.requested { usleep(20_000) }
        sampler.stop()
        phase.set("end")
        sampler.sample()
        if let json = Support.readFile(control + "/stats.json") { Self.writeFile(runDir + "/stats-end.json", json) }
        if let slabinfo = Support.readFile(control + "/slabinfo") { Self.writeFile(runDir + "/slabinfo-end.txt", slabinfo) }
        if sampler.failedReads > 0 { problems.append("\(name): \(sampler.failedReads) samples of stats.json could not be read, the last \(sampler.lastFailedRead)") }

        let samples = sampler.collected
        let run = CompareRun(setting: setting.label, workload: spec.name, ops: result.ops, seconds: result.seconds,
                             errors: result.errors, shrinkSeconds: shrinkSeconds, samples: samples)
        let row = CompareRow.compute(run)
        Self.say("\(name): \(result.ops) ops in \(Report.fixed(result.seconds, 1)) s (\(Int(result.opsPerSecond.rounded())) ops/s), "
                 + "\(result.errors) errors, slab peak \(Report.mebibytes(row.peakSlabBytes)) MiB, \(samples.count) samples")

        // Unmount (the deferred call is then a no-op), and check the store.
        if !unmount(mnt, pidFile: pidFile) {
            problems.append("\(name): the daemon did not exit cleanly after the unmount (see runs/\(spec.name)/\(setting.fileName)/daemon.log)")
        }
        do throws(CLIError) {
            let findings = try StoreGlue.check(path: store)
            Self.writeFile(runDir + "/fsck.txt", findings.isEmpty ? "clean\n" : findings.joined(separator: "\n") + "\n")
            if !findings.isEmpty { problems.append("\(name): fsck found \(findings.count) problem(s): \(findings[0])") }
        } catch let e {
            Self.writeFile(runDir + "/fsck.txt", e.message + "\n")
            problems.append("\(name): fsck: \(e.message)")
        }
        return .success(run, problems)
    }

    /// Writes one command to control and reads the result back.
    func controlCommand(_ path: String, _ command: String) -> (Bool, String) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return (false, "cannot open \(path): \(Support.errnoString())") }
        let n = command.withCString { write(fd, $0, strlen($0)) }
        let e = errno
        close(fd)
        if n < 0 { return (false, Support.errnoString(e)) }
        return (true, Support.readFile(path) ?? "")
    }

    /// fusermount3 -u (retried while busy, then lazily), then waits for the daemon to finish its
    /// writeback and exit. True when the daemon exited by itself.
    @discardableResult
    func unmount(_ mnt: String, pidFile: String) -> Bool {
        let pid = Support.readFile(pidFile).flatMap { pid_t($0.trimmingCharacters().split(separator: "\n").first.map(String.init) ?? "") }
        var attempt = 0
        while Support.metafsMount(at: mnt) != nil && attempt < 20 {
            runProgram(["fusermount3", "-u", mnt])
            if Support.metafsMount(at: mnt) == nil { break }
            attempt += 1
            usleep(UInt32(50_000 * attempt))
        }
        if Support.metafsMount(at: mnt) != nil { runProgram(["fusermount3", "-uz", mnt]) }
        guard let pid, pid > 1 else { return true }
        let deadline = Support.monotonicSeconds() + 60
        while isOurDaemon(pid, mnt) && Support.monotonicSeconds() < deadline { usleep(20_000) }
        if isOurDaemon(pid, mnt) {
            kill(pid, SIGKILL)
            return false
        }
        return true
    }

    /// Is `pid` still the metafs daemon serving `mnt` (never signal a stranger that reused the pid)?
    func isOurDaemon(_ pid: pid_t, _ mnt: String) -> Bool {
        guard kill(pid, 0) == 0, let cmd = Support.readFile("/proc/\(pid)/cmdline") else { return false }
        return cmd.contains("--foreground") && cmd.contains(mnt)
    }

    // MARK: charts

    static func findProgram(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 { return "\(dir)/\(name)" }
        return nil
    }

    /// gnuplot, installing gnuplot-nox with apt-get when it is missing (as root, unless --no-install).
    func ensureGnuplot(log: String) -> Bool {
        if Self.findProgram("gnuplot") != nil { return true }
        guard plan.installGnuplot, geteuid() == 0, Self.findProgram("apt-get") != nil else { return false }
        Self.say("gnuplot is missing: installing gnuplot-nox (apt-get, log in \(log))")
        let env = ["DEBIAN_FRONTEND=noninteractive"]
        if runProgram(["apt-get", "install", "-y", "-qq", "gnuplot-nox"], output: log, environment: env) != 0 {
            runProgram(["apt-get", "update", "-qq"], output: log, environment: env)
            runProgram(["apt-get", "install", "-y", "-qq", "gnuplot-nox"], output: log, environment: env)
        }
        return Self.findProgram("gnuplot") != nil
    }

    /// Writes data files and scripts under charts/ and runs gnuplot; returns, per workload, the
    /// chart files drawn.
    func drawCharts(_ runs: [CompareRun], format: Gnuplot.Format, reportDir: String) -> [String: [String]] {
        let dir = reportDir + "/charts"
        let haveGnuplot = ensureGnuplot(log: dir + "/apt.log")
        var drawn: [String: [String]] = [:]
        for spec in plan.workloads {
            let mine = runs.filter { $0.workload == spec.name }
            guard !mine.isEmpty else { continue }
            var lines: [(label: String, dataFile: String)] = []
            for r in mine {
                let file = "\(spec.name).\(CompareSetting.fileName(r.setting)).dat"
                Self.writeFile(dir + "/" + file, Gnuplot.data(r.samples))
                lines.append((r.setting, file))
            }
            let budget = mine.compactMap { $0.samples.last?.budgetBytes }.filter { $0 > 0 }.first
            for chart in Gnuplot.Chart.allCases {
                let output = "\(spec.name)-\(chart.rawValue).\(format.rawValue)"
                let script = "\(spec.name)-\(chart.rawValue).gp"
                Self.writeFile(dir + "/" + script, Gnuplot.script(workload: spec.name, chart: chart, lines: lines, output: output,
                                                                 format: format, budgetMiB: budget.map { Double($0) / 1_048_576 }))
                guard haveGnuplot else { continue }
                let status = runProgram(["/bin/sh", "-c", "cd '\(dir)' && exec gnuplot '\(script)'"], output: dir + "/gnuplot.log")
                if status == 0 { drawn[spec.name, default: []].append(output) }
                else { Support.eprint("metafs: gnuplot failed on \(dir)/\(script) (see \(dir)/gnuplot.log)\n") }
            }
        }
        if !haveGnuplot {
            Self.say("gnuplot is not installed: the chart scripts are in \(dir) (apt-get install gnuplot-nox; cd \(dir); gnuplot *.gp)")
        }
        return drawn
    }

    // MARK: report.md

    func markdown(_ rows: [CompareRow], charts: [String: [String]], failures: [String]) -> String {
        var out = "# metafs compare\n\n"
        out += "- command: `\(plan.commandLine)`\n"
        out += "- date: \(Self.timestamp()); machine: \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) CPUs, kernel \(Support.readFile("/proc/sys/kernel/osrelease")?.trimmingCharacters().split(separator: "\n").first ?? "?")\n"
        out += "- settings: " + plan.settings.map { "`\($0.label)`" + ($0.options.isEmpty ? " (mount defaults)" : " (`\($0.mountArguments.joined(separator: " "))`)") }.joined(separator: ", ") + "\n"
        out += "- budget: " + (plan.budgetArguments.isEmpty ? "none given" : "`\(plan.budgetArguments[1])`") + (plan.shrink.map { "; after each workload: `shrink \($0)`" } ?? "") + "\n"
        out += "- workload options: \(plan.options.threads) threads, seed \(plan.options.seed)" + (plan.options.duration.map { ", at most \($0) s per timed phase" } ?? "") + "; samples every \(plan.interval) s, \(plan.settle) s of settling\n\n"
        out += "Columns: ops/s is the workload's throughput; hit % the cache hit rate over the run; evicted, pages freed, "
            + "writebacks and relocations are the shrinkers' counters over the run (`-` when stats.json has none); evicted/page "
            + "is objects evicted per slab page freed (lower is better); slab use after is live object bytes over slot bytes at "
            + "the end of the run; reclaim ms is the shrinkers' scan time (or the shrink command's wall time). See docs/WORKLOADS.md.\n\n"
        for spec in plan.workloads {
            let r = rows.filter { $0.workload == spec.name }
            guard !r.isEmpty else { continue }
            out += "## \(spec.name)\n\n\(spec.summary)\n\n" + CompareTable.markdown(workload: spec.name, r) + "\n"
            for c in charts[spec.name] ?? [] { out += "![\(c)](charts/\(c))\n" }
            out += "\n"
        }
        if !failures.isEmpty {
            out += "## Problems\n\n" + failures.map { "- " + $0.split(separator: "\n").joined(separator: " ") }.joined(separator: "\n") + "\n"
        }
        return out
    }
}
