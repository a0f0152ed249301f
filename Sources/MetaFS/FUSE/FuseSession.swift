import CFuse
import Glibc

/// Why a session could not be set up.
public struct FuseSessionError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One mounted metafs: a libfuse low-level session over a file system, served by a
/// multi-threaded loop (metafs's polling loop, or libfuse's with `spinMicroseconds` 0).
/// Typical use (the `metafs mount --foreground` daemon):
///
///     let session = try FuseSession(fileSystem: fs, mountpoint: mnt, options: opts)
///     session.installSignalHandlers()   // SIGINT/SIGTERM/SIGHUP end the loop
///     session.run()                     // returns after unmount or a signal; writes back, unmounts
public final class FuseSession: @unchecked Sendable {
    public let mountpoint: String
    public let options: FuseMountOptions
    /// Per-operation counters (also shown in the control directory).
    public let statistics: FuseStatistics
    /// The control directory served at `<mount>/.metafs`.
    public var control: ControlDirectory { context.control }

    let context: FuseContext
    private let userdata: Unmanaged<FuseContext>
    private let session: OpaquePointer
    private let loop: LoopOptions
    /// Tells the kernel of the dentries metafs evicts, while `kernel_invalidate` is on.
    private let invalidator: KernelInvalidator
    private var signalsInstalled = false
    private var finished = false

    /// The `-o` option string metafs passes to libfuse.
    public static func mountOptionString(_ options: FuseMountOptions) -> String {
        func escape(_ s: String) -> String {
            var out = ""
            for ch in s {
                if ch == "\\" || ch == "," { out.append("\\") }
                out.append(ch)
            }
            return out
        }
        var o = ["default_permissions", "fsname=" + escape(options.fsname), "subtype=metafs"]
        if options.allowOther { o.append("allow_other") }
        return o.joined(separator: ",")
    }

    /// Settings of libfuse's multi-threaded loop (not session options: libfuse's session parser
    /// would reject them).
    struct LoopOptions: Equatable {
        var maxThreads: Int
        var cloneFD: Bool
        var maxIdleThreads: Int?
    }

    /// Takes the loop settings out of the extra `-o` options — `clone_fd`, `no_clone_fd`,
    /// `max_threads=N`, `max_idle_threads=N` (as libfuse's own command line spells them) — and
    /// returns the rest, to be passed to the session.
    static func loopOptions(_ extra: [String], defaults: FuseMountOptions) -> (LoopOptions, [String]) {
        var loop = LoopOptions(maxThreads: defaults.maxThreads, cloneFD: defaults.cloneFD, maxIdleThreads: nil)
        var rest: [String] = []
        for group in extra {
            var kept: [Substring] = []
            for o in group.split(separator: ",") {
                if o == "clone_fd" { loop.cloneFD = true }
                else if o == "no_clone_fd" { loop.cloneFD = false }
                else if o.hasPrefix("max_threads="), let n = Int(o.dropFirst(12)), n >= 1 { loop.maxThreads = n }
                else if o.hasPrefix("max_idle_threads="), let n = Int(o.dropFirst(17)), n >= 0 { loop.maxIdleThreads = n }
                else { kept.append(o) }
            }
            if !kept.isEmpty { rest.append(kept.joined(separator: ",")) }
        }
        return (loop, rest)
    }

    /// Creates the session and mounts it (the kernel starts sending requests once `run` runs).
    public init(fileSystem: FileSystem, mountpoint: String, options: FuseMountOptions = .init()) throws(FuseSessionError) {
        self.mountpoint = mountpoint
        self.options = options
        self.statistics = FuseStatistics()
        self.context = FuseContext(fs: fileSystem, options: options, stats: statistics)
        self.userdata = Unmanaged.passRetained(context)

        var argv = ["metafs", "-o", FuseSession.mountOptionString(options)]
        let (loopOptions, passOn) = FuseSession.loopOptions(options.extraOptions, defaults: options)
        self.loop = loopOptions
        for extra in passOn where !extra.isEmpty { argv += ["-o", extra] }
        if options.debug { argv.append("-d") }
        var args = cfuse_args_init()
        for a in argv { fuse_opt_add_arg(&args, a) }
        defer { fuse_opt_free_args(&args) }

        var ops = FuseOperations.table()
        guard let se = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata.toOpaque()) else {
            userdata.release()
            throw FuseSessionError("libfuse rejected the session options (\(argv.dropFirst().joined(separator: " ")))")
        }
        if fuse_session_mount(se, mountpoint) != 0 {
            fuse_session_destroy(se)
            userdata.release()
            throw FuseSessionError("cannot mount on \(mountpoint) (see the libfuse message above)")
        }
        self.session = se
        self.invalidator = KernelInvalidator(session: se, statistics: statistics)
        fileSystem.cache.dentries.setEvictionObserver(invalidator)
    }

    /// SIGINT, SIGTERM and SIGHUP end the loop (then `run` writes back and unmounts).
    @discardableResult
    public func installSignalHandlers() -> Bool {
        signalsInstalled = fuse_set_signal_handlers(session) == 0
        return signalsInstalled
    }

    /// Serves requests until the file system is unmounted (`fusermount3 -u`) or `exit` is called
    /// (e.g. by a signal). Then writes everything back (`FileSystem.shutdown`), unmounts and
    /// destroys the session. Returns libfuse's loop result (0 on a clean end).
    @discardableResult
    public func run() -> Int32 {
        precondition(!finished, "FuseSession.run called twice")
        finished = true
        invalidator.start()
        let rc: Int32
        if options.spinMicroseconds > 0 {
            // metafs's loop: a worker polls for the next request before it sleeps (SessionLoop.c).
            rc = cfuse_session_loop(session, UInt32(max(1, loop.maxThreads)), options.spinMicroseconds * 1000)
        } else {
            let cfg = fuse_loop_cfg_create()
            fuse_loop_cfg_set_max_threads(cfg, UInt32(max(1, loop.maxThreads)))
            fuse_loop_cfg_set_clone_fd(cfg, loop.cloneFD ? 1 : 0)
            if let idle = loop.maxIdleThreads { fuse_loop_cfg_set_idle_threads(cfg, UInt32(idle)) }
            rc = fuse_session_loop_mt(session, cfg)
            fuse_loop_cfg_destroy(cfg)
        }
        context.fs.cache.dentries.setEvictionObserver(nil)
        let invalidatorStopped = invalidator.stop()
        // No request is being served any more: write back while the mount still exists, so that a
        // process waiting on the mount sees the data once it is gone.
        context.shutdownOnce()
        fuse_session_unmount(session)
        if signalsInstalled { fuse_remove_signal_handlers(session) }
        if invalidatorStopped {
            fuse_session_destroy(session)     // calls destroy (already shut down: a no-op)
        } else {
            // Its thread is still inside a notification: leave the session to the process's exit.
            logError("kernel_invalidate: a notification was still waiting in the kernel at unmount; session left allocated")
        }
        userdata.release()
        return rc
    }

    /// Asks the loop to end (as a signal does). Worker threads blocked in /dev/fuse notice on their
    /// next request; unmounting is the sure way to end the loop.
    public func exit() {
        fuse_session_exit(session)
    }
}
