import ArgumentParser
import Glibc
import MetaFS

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a store's consistency.",
        discussion: "Exit status 0: clean; 1: findings (printed one per line); 2: the store could not be checked.")

    @Argument(help: "The store file (not mounted).") var store: String

    func run() throws {
        var findingCount = 0
        do throws(CLIError) {
            var st = stat()
            if stat(store, &st) != 0 { throw CLIError("store \(store): \(Support.errnoString())") }
            if let real = Support.realPath(store),
               let m = Support.mounts().first(where: { $0.fstype == "fuse.metafs" && $0.source == real }) {
                throw CLIError("store \(store) is mounted on \(m.mountpoint); unmount it first")
            }
            let findings = try StoreGlue.check(path: store)
            if findings.isEmpty {
                print("metafs fsck: \(store): clean")
                return
            }
            for f in findings { print(f) }
            print("metafs fsck: \(store): \(findings.count) finding\(findings.count == 1 ? "" : "s")")
            findingCount = findings.count
        } catch let e {
            Support.printError(e.message)
            throw ExitCode(2)
        }
        if findingCount > 0 { throw ExitCode(1) }
    }
}
