import ArgumentParser
import MetaFS

@main
struct MetaFSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "metafs", abstract: "metafs: a FUSE file system with observable, reclaimable metadata caches")
}
