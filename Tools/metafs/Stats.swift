import ArgumentParser
import Glibc
import MetaFS

/// `<mount>/.metafs`, after checking that `mountpoint` is a metafs mount.
func controlDirectory(_ mountpoint: String) throws(CLIError) -> String {
    guard let real = Support.realPath(mountpoint) else {
        throw CLIError("\(mountpoint): \(Support.errnoString())")
    }
    guard Support.metafsMount(at: real) != nil else { throw CLIError("\(mountpoint) is not a metafs mount") }
    return real + "/" + ControlDirectory.name
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the statistics of a mounted metafs.")

    @Argument(help: "The mount point.") var mountpoint: String
    @Flag(help: "Print stats.json.") var json = false
    @Flag(help: "Print the slabinfo file.") var slabinfo = false
    @Flag(help: "Print the Prometheus metrics.") var metrics = false
    @Flag(help: "A live view in the manner of slabtop, refreshed until interrupted (q or Ctrl-C on a terminal).") var watch = false
    @Option(help: "Seconds between refreshes of --watch.") var interval: Double = 1
    @Option(help: "Stop --watch after this many refreshes.") var count: Int?

    func validate() throws {
        guard interval >= 0.1 && interval <= 3600 else { throw ValidationError("--interval must be 0.1...3600 seconds") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if (count != nil || interval != 1) && !watch { throw ValidationError("--interval and --count go with --watch") }
        if watch && (json || slabinfo || metrics) { throw ValidationError("--watch shows its own view; drop --json/--slabinfo/--metrics") }
    }

    func run() throws {
        do throws(CLIError) {
            let dir = try controlDirectory(mountpoint)
            if watch {
                try StatsWatch(controlDirectory: dir, mountpoint: mountpoint, interval: interval, count: count).run()
                return
            }
            let file = json ? "stats.json" : slabinfo ? "slabinfo" : metrics ? "metrics" : "stats"
            let bytes = try Support.readBytes(dir + "/" + file)
            print(String(decoding: bytes, as: UTF8.self), terminator: "")
        } catch let e {
            Support.printError(e.message)
            throw ExitCode(1)
        }
    }
}

struct Ctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a command to a mounted metafs (through <mount>/.metafs/control).",
        discussion: "Commands: \(ControlCommandParser.usage.joined(separator: ", ")). Exit status 1 if the command is rejected (EINVAL).")

    @Argument(help: "The mount point.") var mountpoint: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.") var command: [String] = []

    func run() throws {
        do throws(CLIError) {
            let dir = try controlDirectory(mountpoint)
            let text = command.joined(separator: " ")
            let path = dir + "/control"
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CLIError("cannot open \(path): \(Support.errnoString())") }
            let n = text.withCString { write(fd, $0, strlen($0)) }
            let e = errno
            close(fd)
            if n < 0 {
                if e == EINVAL {
                    var why = "invalid command"
                    do { _ = try ControlCommandParser.parse(text) } catch { why = error.message }
                    throw CLIError("'\(text)' rejected: \(why)")
                }
                throw CLIError("'\(text)' failed: \(Support.errnoString(e))")
            }
            let result = try Support.readBytes(path)
            print(String(decoding: result, as: UTF8.self), terminator: "")
        } catch let e {
            Support.printError(e.message)
            throw ExitCode(1)
        }
    }
}
