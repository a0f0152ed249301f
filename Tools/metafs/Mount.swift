import ArgumentParser
import Glibc
import MetaCache
import MetaFS

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mount a metafs store.",
        discussion: """
        Without --foreground, metafs starts itself in the background (a new session, output to the \
        log file), waits until the mount is ready, and returns. SIGINT and SIGTERM to the daemon, or \
        `fusermount3 -u MOUNTPOINT`, write every dirty object back and unmount.

        By default metafs runs in exercise mode: the kernel caches neither names nor attributes \
        (timeouts 0) and files are opened with direct_io (no page cache), so every operation reaches \
        metafs's caches. With libfuse 3.14, direct_io files cannot be mmap'd (ENODEV): use \
        --no-direct-io for programs that mmap files.
        """)

    @Argument(help: "The store file (made with `metafs mkfs`).") var store: String
    @Argument(help: "An existing, empty directory to mount on.") var mountpoint: String

    @Flag(help: "Stay in the foreground and serve requests until unmounted.") var foreground = false
    @Flag(help: "Let users other than the mounting one use the mount (needs user_allow_other in /etc/fuse.conf for non-root).")
    var allowOther = false
    @Option(name: .customShort("o"), help: ArgumentHelp("Options passed on to FUSE (comma separated; may repeat).", valueName: "opts")) var fuseOptions: [String] = []
    @Option(help: "Maximum number of FUSE worker threads (2 measured best on a 2-core machine: docs/PERFORMANCE.md).") var threads = 2
    @Option(help: "Microseconds a FUSE worker polls for the next request before it sleeps (0: libfuse's own loop; docs/PERFORMANCE.md).")
    var spinUs = 50
    @Option(help: "Seconds the kernel may cache names (0: exercise mode).") var entryTimeout: Double = 0
    @Option(help: "Seconds the kernel may cache attributes (0: exercise mode).") var attrTimeout: Double = 0
    @Flag(help: "Let the kernel cache file data (no direct_io); needed for mmap with libfuse 3.14.") var noDirectIO = false
    @Option(help: "Seconds between background commits of dirty metadata.") var flushInterval: Double = 5
    @Option(help: "Log file of the background daemon (default: STORE.log).") var log: String?
    @Option(help: "Write the daemon's process id to this file while it runs.") var pidFile: String?
    @Option(help: "Seconds to wait for the mount to become ready.") var timeout: Double = 30
    @Flag(help: "libfuse debug output (every request) to the log.") var debug = false
    @Flag(help: "If the daemon of an earlier mount of this store or on this mount point died (a dead FUSE mount is left), unmount it first.")
    var forceUnmountStale = false

    // Reclaim (docs/RECLAIM.md). Every one but --merge can be changed later through control.
    @Option(help: ArgumentHelp("Memory budget of the caches' slabs (e.g. 64M, 1G; 'off': none; 'auto': reclaim on memory pressure).", valueName: "size"))
    var budget: String?
    @Option(help: ArgumentHelp("Shrinker policy: lru, page or hybrid (default lru).", valueName: "name")) var policy: String?
    @Option(help: ArgumentHelp("Dirty objects under reclaim: skip or writeback (default skip).", valueName: "mode")) var dirty: String?
    @Option(help: ArgumentHelp("Leaf and directory dentries in separate slabs: on or off (default off).", valueName: "on|off"))
    var segregate: String?
    @Option(help: ArgumentHelp("Caches of one object size share slabs, as SLUB merges them: on or off (default off).", valueName: "on|off"))
    var merge: String?
    @Option(help: ArgumentHelp("Threads that may reclaim directly at once, 1...64 (default 2).", valueName: "n")) var reclaimers: String?
    @Option(help: ArgumentHelp("Bound on negative dentries (default: none).", valueName: "n")) var negativeMax: String?
    @Option(help: ArgumentHelp("Cap one cache's slab memory: dentry|inode|extent=SIZE (may repeat; as `limit CACHE SIZE` in control).", valueName: "cache=size"))
    var limit: [String] = []
    @Option(help: ArgumentHelp("Tell the kernel to drop its dentry when metafs evicts one: on or off (default off; matters with --entry-timeout above 0).", valueName: "on|off"))
    var kernelInvalidate: String?

    func validate() throws {
        guard threads >= 1 && threads <= 1024 else { throw ValidationError("--threads must be 1...1024") }
        guard spinUs >= 0 && spinUs <= 1_000_000 else { throw ValidationError("--spin-us must be 0...1000000") }
        guard entryTimeout >= 0, attrTimeout >= 0 else { throw ValidationError("timeouts must not be negative") }
        guard flushInterval > 0 else { throw ValidationError("--flush-interval must be positive") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        _ = try reclaimSettings()
    }

    /// The reclaim options as MetaCache settings; a bad value is a ValidationError that names
    /// the option (the same parsers as the control commands).
    func reclaimSettings() throws -> (settings: ReclaimSettings, merge: Bool) {
        var s = ReclaimSettings()
        var merged = false
        func check<T>(_ option: String, _ value: String?, _ parse: (Substring) throws(ControlCommandError) -> T) throws -> T? {
            guard let value else { return nil }
            do { return try parse(Substring(value)) } catch {
                throw ValidationError("--\(option) \(value): \(error.message)")
            }
        }
        switch try check("budget", budget, ReclaimArgument.budget) {
        case .bytes(let b)?: s.budgetBytes = Int(b)
        case .auto?: s.budgetAuto = true
        case .off?, nil: break
        }
        if let p = try check("policy", policy, ReclaimArgument.policy) { s.policy = p }
        if let d = try check("dirty", dirty, ReclaimArgument.dirty) { s.dirty = d }
        if let on = try check("segregate", segregate, ControlArgument.flag) { s.segregate = on }
        if let on = try check("merge", merge, ControlArgument.flag) { merged = on }
        if let n = try check("reclaimers", reclaimers, ReclaimArgument.reclaimers) { s.reclaimers = n }
        if let n = try check("negative-max", negativeMax, ReclaimArgument.negativeMax) { s.negativeMax = n.map { Int($0) } ?? 0 }
        if let on = try check("kernel-invalidate", kernelInvalidate, ControlArgument.flag) { s.kernelInvalidate = on }
        for l in limit {
            let parts = l.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw ValidationError("--limit \(l): expected CACHE=SIZE (e.g. dentry=16M)") }
            let cache = try check("limit", String(parts[0]), ReclaimArgument.cache)!
            s.limits[cache] = try check("limit", String(parts[1]), ReclaimArgument.limit)!.map { Int($0) }
        }
        return (s, merged)
    }

    /// The reclaim options again, for the daemon's command line.
    var reclaimArguments: [String] {
        var a: [String] = []
        for (name, value) in [("budget", budget), ("policy", policy), ("dirty", dirty), ("segregate", segregate),
                              ("merge", merge), ("reclaimers", reclaimers), ("negative-max", negativeMax),
                              ("kernel-invalidate", kernelInvalidate)] {
            if let value { a += ["--\(name)", value] }
        }
        for l in limit { a += ["--limit", l] }
        return a
    }

    func run() throws {
        do throws(CLIError) {
            try StaleMounts.handle(store: store, mountpoint: mountpoint, clear: forceUnmountStale)
            let (realStore, realMount) = try Support.preflight(store: store, mountpoint: mountpoint)
            if foreground {
                try serve(store: realStore, mountpoint: realMount)
            } else {
                try spawnDaemon(store: realStore, mountpoint: realMount)
            }
        } catch let e {
            Support.printError(e.message)
            throw ExitCode(1)
        }
    }

    var fuseMountOptions: FuseMountOptions {
        var o = FuseMountOptions()
        o.entryTimeout = entryTimeout
        o.attrTimeout = attrTimeout
        o.directIO = !noDirectIO
        o.allowOther = allowOther
        o.maxThreads = threads
        o.spinMicroseconds = spinUs
        o.extraOptions = fuseOptions
        o.debug = debug
        return o
    }

    /// The daemon: opens the store, mounts, serves until unmount or a signal, writes back.
    func serve(store: String, mountpoint: String) throws(CLIError) {
        // A shell starts background jobs with SIGINT ignored, and libfuse only installs its
        // handlers over the default action: reset them so SIGINT/SIGTERM/SIGHUP unmount cleanly.
        for s in [SIGINT, SIGTERM, SIGHUP] { signal(s, SIG_DFL) }
        // glibc gives every thread that allocates its own malloc arena, and each FUSE worker's
        // arena keeps what it once held: with 8 workers that was ~50 MiB of anonymous memory
        // beside a 64 MiB cache budget. Two arenas hold it to ~20 MiB (docs/RECLAIM.md).
        Self.limitMallocArenas(2)
        chdir("/")    // do not keep the caller's directory busy (all paths are absolute here)

        var fsOptions = FileSystemOptions()
        fsOptions.flushInterval = flushInterval
        var cacheConfiguration = CacheConfiguration()
        do {
            let (settings, merged) = try reclaimSettings()
            cacheConfiguration.reclaim = settings
            cacheConfiguration.merge = merged
        } catch {
            throw CLIError("\(error)")
        }
        let fs: FileSystem
        do {
            fs = try FileSystem(storePath: store, cache: MetaCache(configuration: cacheConfiguration), options: fsOptions)
        } catch {
            let hint: String
            switch error.code {
            case ENOENT: hint = " (missing store)"
            case EIO, EINVAL, EUCLEAN, EBADMSG: hint = " (damaged store? run: metafs fsck \(store))"
            case EBUSY, EAGAIN, EWOULDBLOCK: hint = " (store in use by another metafs?)"
            default: hint = ""
            }
            throw CLIError("cannot open store \(store): \(error)\(hint)")
        }
        var options = fuseMountOptions
        options.fsname = store
        let session: FuseSession
        do {
            session = try FuseSession(fileSystem: fs, mountpoint: mountpoint, options: options)
        } catch {
            fs.shutdown()
            throw CLIError(error.message)
        }
        session.installSignalHandlers()
        if let pidFile { writePidFile(pidFile) }
        Support.eprint("metafs: serving \(store) on \(mountpoint) (pid \(getpid()), \(threads) threads)\n")
        let rc = session.run()
        if let pidFile { unlink(pidFile) }
        Support.eprint("metafs: unmounted \(mountpoint) (loop result \(rc))\n")
        // libfuse returns the signal number after SIGINT/SIGTERM/SIGHUP (a clean end), -errno on error.
        if rc < 0 { throw CLIError("session loop ended with error: \(Support.errnoString(-rc))") }
    }

    /// mallopt(M_ARENA_MAX, n) (<malloc.h> is not in the Glibc module; M_ARENA_MAX is -8).
    static func limitMallocArenas(_ n: Int32) {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        _ = unsafeBitCast(sym, to: Mallopt.self)(-8, n)
    }

    /// POSIX_SPAWN_SETSID (glibc, needs _GNU_SOURCE, so not imported).
    var spawnSetSID: Int32 { 0x80 }

    func writePidFile(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            Support.eprint("metafs: cannot write pid file \(path): \(Support.errnoString())\n")
            return
        }
        let text = "\(getpid())\n"
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    /// Starts `metafs mount ... --foreground` in a new session and waits for the mount.
    func spawnDaemon(store: String, mountpoint: String) throws(CLIError) {
        let exe = Support.realPath("/proc/self/exe") ?? CommandLine.arguments[0]
        let logPath = Support.absolutePath(log ?? store + ".log")
        // Same arguments (paths made absolute), plus --foreground.
        var args = [exe, "mount", store, mountpoint, "--foreground"]
        args += ["--threads", "\(threads)", "--spin-us", "\(spinUs)", "--entry-timeout", "\(entryTimeout)", "--attr-timeout", "\(attrTimeout)",
                 "--flush-interval", "\(flushInterval)"]
        if allowOther { args.append("--allow-other") }
        if noDirectIO { args.append("--no-direct-io") }
        if debug { args.append("--debug") }
        args += reclaimArguments
        for o in fuseOptions { args += ["-o", o] }
        if let pidFile { args += ["--pid-file", Support.absolutePath(pidFile)] }

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attr, &mask)
        posix_spawnattr_setflags(&attr, Int16(spawnSetSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let logStart = fileSize(logPath)
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attr, &cargs, environ)
        guard rc == 0 else { throw CLIError("cannot start the metafs daemon (\(exe)): \(Support.errnoString(rc))") }

        let deadline = Support.monotonicSeconds() + timeout
        while true {
            if Support.metafsMount(at: mountpoint) != nil {
                // Mounted; make sure the daemon is serving (the first request completes INIT).
                var st = stat()
                _ = stat(mountpoint, &st)
                print("metafs: mounted \(store) on \(mountpoint) (daemon pid \(pid), log \(logPath))")
                return
            }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                let output = logTail(logPath, from: logStart)
                throw CLIError("the metafs daemon exited before the mount was ready\(output.isEmpty ? "" : ":\n" + output)")
            }
            if Support.monotonicSeconds() > deadline {
                kill(pid, SIGTERM)
                throw CLIError("mount not ready after \(timeout) s (daemon pid \(pid) stopped; see \(logPath))")
            }
            usleep(20_000)
        }
    }

    func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_size : 0
    }

    func logTail(_ path: String, from offset: Int) -> String {
        guard let bytes = try? Support.readBytes(path) else { return "" }
        var text = String(decoding: bytes.dropFirst(min(offset, bytes.count)), as: UTF8.self)
        // The daemon already says "metafs: ..."; avoid "metafs: metafs:".
        while text.hasSuffix("\n") { text.removeLast() }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.count > 24 { text = lines.prefix(24).joined(separator: "\n") + "\n... (\(lines.count - 24) more lines)" }
        return text
    }
}

/// Dead mounts: a metafs daemon killed (SIGKILL, OOM) leaves its FUSE mount behind, and every
/// access to it fails with ENOTCONN ("Transport endpoint is not connected") until it is unmounted.
enum StaleMounts {
    /// Is `path` a mount whose FUSE connection is gone?
    static func isDead(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) != 0 && errno == ENOTCONN
    }

    /// Finds dead metafs mounts on `mountpoint` or of `store`; says what happened and how to
    /// clear them, or (with `clear`) unmounts them, reporting a busy one instead of waiting.
    static func handle(store: String, mountpoint: String, clear: Bool) throws(CLIError) {
        let mp = Support.absolutePath(mountpoint)
        let realStore = Support.realPath(store)
        var dead: [MountEntry] = []
        for m in Support.mounts() where m.fstype.hasPrefix("fuse") {
            let here = m.mountpoint == mp || m.mountpoint == Support.realPath(mp)
            let ours = m.fstype == "fuse.metafs" && realStore != nil && m.source == realStore
            if (here || ours) && isDead(m.mountpoint) { dead.append(m) }
        }
        if dead.isEmpty && isDead(mp) {
            dead.append(MountEntry(source: "?", mountpoint: mp, fstype: "fuse", options: ""))
        }
        for m in dead {
            let what = "\(m.mountpoint) holds a dead FUSE mount of \(m.source): the daemon that served it is gone (killed or crashed), so every access fails with 'Transport endpoint is not connected'"
            guard clear else {
                throw CLIError("""
                    \(what).
                    Clear it with: fusermount3 -u \(m.mountpoint)   (or mount again with --force-unmount-stale)
                    The store was not closed cleanly; the next mount replays its journal.
                    """)
            }
            let r = run(["fusermount3", "-u", m.mountpoint], timeout: 10)
            if r.status != 0 || isDead(m.mountpoint) {
                let busy = r.output.contains("busy") || r.output.contains("Device or resource busy")
                throw CLIError("""
                    \(what), and it could not be unmounted\(busy ? ": it is busy (a process still has its working directory or a file in it; `fuser -vm \(m.mountpoint)` lists them)" : "")\(r.output.isEmpty ? "" : "\n" + r.output).
                    Stop those processes and try again, or detach it lazily with: fusermount3 -uz \(m.mountpoint)
                    """)
            }
            Support.eprint("metafs: unmounted the dead mount on \(m.mountpoint) (its daemon had died); the store's journal is replayed now\n")
        }
    }

    /// Runs a command with a time limit (a hung unmount is killed and reported, not waited for).
    static func run(_ argv: [String], timeout: Double) -> (status: Int32, output: String) {
        var template = Array("/tmp/metafs-cmd.XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { return (-1, "mkstemp: \(Support.errnoString())") }
        let outPath = String(cString: template)
        defer { close(fd); unlink(outPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fd, 1)
        posix_spawn_file_actions_adddup2(&actions, fd, 2)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        guard posix_spawnp(&pid, argv[0], &actions, nil, &cargs, environ) == 0 else { return (-1, "cannot run \(argv[0])") }
        let deadline = Support.monotonicSeconds() + timeout
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Support.monotonicSeconds() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return (-1, "\(argv.joined(separator: " ")) did not finish in \(Int(timeout)) s")
            }
            usleep(10_000)
        }
        let text = (try? Support.readBytes(outPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
