import Foundation
import Glibc
import MetaCache
@testable import MetaFS
import Testing

// The live-mount test harness. Each test gets a temporary directory with a store and a mount
// point, mounts, runs real shell tools with a time limit, and ALWAYS unmounts in `withMount`'s
// teardown (fusermount3 -u, then -uz, then SIGKILL of the daemon pid it started, never anything
// else). Mounts left by a crashed earlier run (under /tmp/metafs-test.*) are swept first.
//
// The daemon is the real thing: `metafs mkfs` + `metafs mount` with the built binary (next to the
// test bundle, or $METAFS_BINARY), FileSystem + Store + MetaCache in the daemon.

/// The result of a shell command.
struct ShellResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool
    var ok: Bool { status == 0 && !timedOut }
    var description: String {
        "status \(status)\(timedOut ? " (timed out)" : "")\nstdout: \(stdout.prefix(4000))\nstderr: \(stderr.prefix(4000))"
    }
}

enum Shell {
    /// Runs `/bin/bash -c script` in its own process group with `env` added; kills the whole group
    /// after `timeout` seconds. Output goes through temporary files (no pipe deadlocks).
    static func run(_ script: String, env: [String: String] = [:], cwd: String? = nil, timeout: Double = 120) -> ShellResult {
        var template = Array("/tmp/metafs-sh.XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { return ShellResult(status: -1, stdout: "", stderr: "mkdtemp failed", timedOut: false) }
        let tmp = String(cString: dir)
        defer { _ = try? FileManager.default.removeItem(atPath: tmp) }
        let out = tmp + "/out", err = tmp + "/err"

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setpgroup(&attr, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))

        var environment = ProcessInfo.processInfo.environment
        environment["LC_ALL"] = "C"
        for (k, v) in env { environment[k] = v }
        let fullScript = (cwd.map { "cd '\($0)' || exit 125\n" } ?? "") + script
        let argv = ["/bin/bash", "-c", fullScript]
        let envp = environment.map { "\($0.key)=\($0.value)" }
        var cargv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cenv: [UnsafeMutablePointer<CChar>?] = envp.map { strdup($0) } + [nil]
        defer { for p in cargv { free(p) }; for p in cenv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/bash", &actions, &attr, &cargv, &cenv)
        guard rc == 0 else { return ShellResult(status: -1, stdout: "", stderr: "posix_spawn: \(rc)", timedOut: false) }

        let deadline = monotonic() + timeout
        var status: Int32 = 0
        var timedOut = false
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }
            if monotonic() > deadline {
                timedOut = true
                kill(-pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                break
            }
            usleep(5_000)
        }
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let o = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let e = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        return ShellResult(status: code, stdout: o, stderr: e, timedOut: timedOut)
    }

    static func monotonic() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}

enum MountTable {
    static func mounts() -> [(source: String, mountpoint: String, fstype: String)] {
        guard let text = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count >= 3 else { return nil }
            func unescape(_ s: Substring) -> String {
                s.replacingOccurrences(of: "\\040", with: " ").replacingOccurrences(of: "\\011", with: "\t")
                    .replacingOccurrences(of: "\\012", with: "\n").replacingOccurrences(of: "\\134", with: "\\")
            }
            return (unescape(f[0]), unescape(f[1]), String(f[2]))
        }
    }

    static func isMounted(_ path: String) -> Bool { mounts().contains { $0.mountpoint == path } }

    /// Unmounts `path`: fusermount3 -u (retried while busy), then a lazy unmount.
    @discardableResult
    static func unmount(_ path: String) -> Bool {
        for attempt in 0..<20 {
            if !isMounted(path) { return true }
            _ = Shell.run("fusermount3 -u '\(path)'", timeout: 30)
            if !isMounted(path) { return true }
            usleep(UInt32(50_000 * (attempt + 1)))
        }
        _ = Shell.run("fusermount3 -uz '\(path)' || umount -l '\(path)'", timeout: 30)
        return !isMounted(path)
    }

    /// Unmounts what an earlier, crashed run left under /tmp/metafs-test.* and stops the daemons
    /// recorded in those directories' pid files.
    /// Only mounts whose test process (dir/owner.pid) is gone are touched: a test run in another
    /// worktree at the same time keeps its mounts, and so does a test of this run that has just
    /// killed its daemon on purpose (its dead mount is what it checks; sweeping it made
    /// staleMountIsExplainedAndCleared flaky). Every test unmounts its own in its teardown.
    static func sweepStale() {
        for m in mounts() where m.mountpoint.hasPrefix("/tmp/metafs-test.") {
            // The fixture's own directory, /tmp/metafs-test.XXXXXX, holds owner.pid and daemon.pid,
            // also for mounts deeper below it (compare mounts under <dir>/work/...).
            let top = "/tmp/" + m.mountpoint.dropFirst("/tmp/".count).prefix { $0 != "/" }
            let dir = (m.mountpoint as NSString).deletingLastPathComponent
            let owner = readPid(top + "/owner.pid")
            let ownerGone = owner.map { $0 != getpid() && kill($0, 0) != 0 && errno == ESRCH } ?? true
            guard ownerGone else { continue }
            unmount(m.mountpoint)
            if let pid = readPid(dir + "/daemon.pid"), isMetafsDaemon(pid) { kill(pid, SIGKILL) }
        }
        // Directories of dead test processes, once nothing is mounted under them.
        let mounted = mounts().map(\.mountpoint)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? [] where name.hasPrefix("metafs-test.") {
            let dir = "/tmp/" + name
            guard let owner = readPid(dir + "/owner.pid"), owner != getpid(), kill(owner, 0) != 0, errno == ESRCH,
                  !mounted.contains(where: { $0.hasPrefix(dir + "/") }) else { continue }
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    static func readPid(_ path: String) -> pid_t? {
        guard let s = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return pid_t(s.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Is `pid` a live metafs process (so that a stale pid file never makes us kill a stranger)?
    static func isMetafsDaemon(_ pid: pid_t) -> Bool {
        guard pid > 1, kill(pid, 0) == 0,
              let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return false }
        return cmd.contains("metafs") && cmd.contains("--foreground")
    }
}

/// One mounted metafs in a temporary directory.
final class MountFixture: @unchecked Sendable {
    let dir: String
    let store: String
    let mnt: String
    var storeSize = "1G"
    private(set) var daemonPid: pid_t?

    var control: String { mnt + "/.metafs" }

    init() throws {
        MountTable.sweepStale()
        var template = Array("/tmp/metafs-test.XXXXXX".utf8CString)
        guard let d = mkdtemp(&template) else { throw FixtureError("mkdtemp: \(errno)") }
        dir = String(cString: d)
        store = dir + "/test.store"
        mnt = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: false)
        try "\(getpid())\n".write(toFile: dir + "/owner.pid", atomically: true, encoding: .utf8)
    }

    struct FixtureError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// The metafs binary: $METAFS_BINARY, or next to the test bundle (swift build puts both in
    /// .build/<config>), or .build/debug/metafs from the package directory.
    static func binary() throws -> String {
        if let b = ProcessInfo.processInfo.environment["METAFS_BINARY"] { return b }
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            var d = (exe as NSString).deletingLastPathComponent
            for _ in 0..<4 {
                candidates.append(d + "/metafs")
                d = (d as NSString).deletingLastPathComponent
            }
        }
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates += [here.path + "/.build/debug/metafs", here.path + "/.build/release/metafs"]
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) { return c }
        throw FixtureError("metafs binary not found (build it: swift build --product metafs, or set METAFS_BINARY); tried \(candidates)")
    }

    /// Makes the store: `metafs mkfs`.
    func mkfs() throws {
        let r = Shell.run("'\(try Self.binary())' mkfs '\(store)' --size \(storeSize)", timeout: 120)
        guard r.ok else { throw FixtureError("metafs mkfs failed: \(r)") }
    }

    /// Mounts: `metafs mount`, which returns once the mount is ready.
    func mount(extraArguments: String = "") throws {
        let cmd = "'\(try Self.binary())' mount '\(store)' '\(mnt)' --pid-file '\(dir)/daemon.pid' --log '\(dir)/daemon.log' \(extraArguments)"
        let r = Shell.run(cmd, timeout: 60)
        daemonPid = MountTable.readPid(dir + "/daemon.pid")
        guard r.ok, MountTable.isMounted(mnt) else {
            throw FixtureError("metafs mount failed: \(r)\nlog:\n\(daemonLog())")
        }
    }

    func daemonLog() -> String { (try? String(contentsOfFile: dir + "/daemon.log", encoding: .utf8)) ?? "" }

    /// Unmounts and waits for the daemon to finish writing back. Returns whether everything
    /// ended cleanly (a daemon that had to be killed did not).
    @discardableResult
    func unmount(timeout: Double = 60) -> Bool {
        var clean = MountTable.unmount(mnt)
        if let pid = daemonPid {
            let deadline = Shell.monotonic() + timeout
            while kill(pid, 0) == 0 && MountTable.isMetafsDaemon(pid) && Shell.monotonic() < deadline { usleep(20_000) }
            if MountTable.isMetafsDaemon(pid) {
                kill(pid, SIGKILL)
                clean = false
            }
            daemonPid = nil
        }
        return clean
    }

    /// Teardown: unmount whatever happened, then remove the directory (never while mounted).
    func teardown() {
        unmount()
        if MountTable.isMounted(mnt) { MountTable.unmount(mnt) }
        if !MountTable.isMounted(mnt) { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// Runs a shell script with $MNT, $DIR, $CTL and $STORE set, in the mount point.
    @discardableResult
    func sh(_ script: String, timeout: Double = 120) -> ShellResult {
        Shell.run(script, env: ["MNT": mnt, "DIR": dir, "CTL": control, "STORE": store, "METAFS": (try? Self.binary()) ?? "metafs"],
                  cwd: mnt, timeout: timeout)
    }

    /// Runs a script and records an issue (with its output) if it fails.
    @discardableResult
    func check(_ script: String, _ what: String? = nil, timeout: Double = 120,
               sourceLocation: SourceLocation = #_sourceLocation) -> ShellResult {
        let r = sh(script, timeout: timeout)
        #expect(r.ok, "\(what.map { $0 + ": " } ?? "")\(script)\n\(r)", sourceLocation: sourceLocation)
        return r
    }

    func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
}

/// Runs `body` on a fresh, mounted store; always unmounts and cleans up afterwards.
func withMount(mountArguments: String = "", _ body: (MountFixture) throws -> Void) throws {
    let f = try MountFixture()
    defer { f.teardown() }
    try f.mkfs()
    try f.mount(extraArguments: mountArguments)
    try body(f)
}
