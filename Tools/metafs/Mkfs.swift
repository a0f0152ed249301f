import ArgumentParser
import Glibc
import MetaFS

struct Mkfs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a metafs store file.")

    @Argument(help: "Path of the store file to create.") var store: String
    @Option(help: "Store size: bytes or with a K, M, G, T suffix (e.g. 1G).") var size: String
    @Option(help: "Number of inodes (default: chosen from the size).") var inodes: UInt64?
    @Flag(help: "Overwrite an existing file.") var force = false

    func run() throws {
        do throws(CLIError) {
            let bytes: UInt64
            do {
                bytes = try ControlArgument.size(Substring(size))
            } catch {
                throw CLIError("bad --size '\(size)': \(error.message)")
            }
            guard bytes >= 1 << 20 else { throw CLIError("--size \(size) is too small (at least 1M)") }
            var st = stat()
            if stat(store, &st) == 0 {
                if st.st_mode & S_IFMT != S_IFREG { throw CLIError("\(store) exists and is not a regular file") }
                if !force { throw CLIError("\(store) already exists (use --force to overwrite it)") }
                if Support.mounts().contains(where: { $0.fstype == "fuse.metafs" && $0.source == Support.realPath(store) }) {
                    throw CLIError("\(store) is mounted; unmount it first")
                }
                unlink(store)
            }
            try StoreGlue.create(path: store, size: bytes, inodeCount: inodes, rootUID: getuid(), rootGID: getgid())
            print("metafs: created \(store) (\(ControlRendering.humanBytes(bytes)))")
        } catch let e {
            Support.printError(e.message)
            throw ExitCode(1)
        }
    }
}
