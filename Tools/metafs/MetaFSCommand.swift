import ArgumentParser
import MetaFS

@main
struct MetaFSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metafs",
        abstract: "metafs: a FUSE file system with observable, reclaimable metadata caches",
        subcommands: [Mkfs.self, Mount.self, Fsck.self, Stats.self, Ctl.self, Workload.self, Compare.self])
}

/// An error the CLI reports as "metafs: <message>" with exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
