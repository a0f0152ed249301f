import Glibc
import MetaFS

/// `metafs stats MOUNTPOINT --watch`: redraws SlabTop's frame every interval until SIGINT/SIGTERM,
/// `q` on a terminal, `--count` frames, or the mount going away. On a terminal the cursor is
/// hidden and stdin is put in non-canonical mode; both are restored on the way out.
struct StatsWatch {
    var controlDirectory: String
    var mountpoint: String
    var interval: Double
    var count: Int?

    func snapshot() throws(CLIError) -> StatsSnapshot {
        let bytes = try Support.readBytes(controlDirectory + "/stats.json")
        do { return try StatsSnapshot.parse(String(decoding: bytes, as: UTF8.self)) } catch {
            throw CLIError(error.message)
        }
    }

    static func terminalWidth() -> Int? {
        var ws = winsize()
        return ioctl(1, UInt(TIOCGWINSZ), &ws) == 0 && ws.ws_col > 0 ? Int(ws.ws_col) : nil
    }

    func run() throws(CLIError) {
        let tty = isatty(1) == 1
        let keys = tty && isatty(0) == 1
        var saved = termios()
        if keys {
            tcgetattr(0, &saved)
            var raw = saved
            raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
            tcsetattr(0, TCSANOW, &raw)
        }
        WorkloadCLI.installInterruptHandlers()
        if tty { WorkloadCLI.writeOut("\u{1B}[?25l\u{1B}[H\u{1B}[2J") }
        defer {
            if keys { tcsetattr(0, TCSANOW, &saved) }
            if tty { WorkloadCLI.writeOut("\u{1B}[?25h") }
        }
        var previous: StatsSnapshot?
        var previousTime = 0.0
        var frames = 0
        while !interruptRequest.requested {
            let s = try snapshot()
            let now = Support.monotonicSeconds()
            let title = "metafs on \(mountpoint): uptime \(Int(s.uptimeSeconds)) s, every \(Report.fixed(interval, 1)) s"
                + (keys ? " (q to quit)" : "")
            let frame = SlabTop.render(s, previous: previous, seconds: previous == nil ? 0 : now - previousTime,
                                       title: title, width: tty ? Self.terminalWidth() : nil)
            if tty {
                // Home, each line cleared to its end, then the rest of the screen cleared.
                WorkloadCLI.writeOut("\u{1B}[H" + frame.split(separator: "\n", omittingEmptySubsequences: false)
                    .map { $0 + "\u{1B}[K" }.joined(separator: "\n") + "\u{1B}[J")
            } else {
                WorkloadCLI.writeOut((frames > 0 ? "\n" : "") + frame)
            }
            previous = s
            previousTime = now
            frames += 1
            if let count, frames >= count { break }
            if waitOrQuit(keys: keys) { break }
        }
        if tty { WorkloadCLI.writeOut("\n") }
    }

    /// Waits one interval; true when the user pressed q (or stdin closed).
    func waitOrQuit(keys: Bool) -> Bool {
        let deadline = Support.monotonicSeconds() + interval
        while !interruptRequest.requested {
            let left = deadline - Support.monotonicSeconds()
            if left <= 0 { return false }
            var fds = [pollfd(fd: keys ? 0 : -1, events: Int16(POLLIN), revents: 0)]
            let r = poll(&fds, 1, Int32(min(left, 0.2) * 1000) + 1)
            if r > 0 && fds[0].revents != 0 {
                var c: UInt8 = 0
                let n = read(0, &c, 1)
                if n <= 0 || c == UInt8(ascii: "q") || c == UInt8(ascii: "Q") { return true }
            }
        }
        return false
    }
}
