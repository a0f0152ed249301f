import ArgumentParser
import Glibc
import MetaFS

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a store's consistency (and repair it with --repair).",
        discussion: """
        Passes as e2fsck's: superblock and journal; inodes (checksums, types, extent maps, xattr and \
        symlink blocks, directory structure); directory entries; connectivity; link counts; block \
        ownership against the bitmaps; the orphan list. Opening the store replays its journal, as a \
        mount does. With --repair, fixes what it safely can: a damaged superblock from its backup, a \
        damaged journal (its last transaction is lost), bad inode checksums, damaged inodes (cleared), \
        entries to free inodes, unreachable inodes (to /lost+found), link counts, parent pointers, \
        the orphan list and the bitmaps.
        Exit status, as e2fsck's: 0 clean; 1 errors fixed; 4 errors left uncorrected; 8 operational \
        error (the store could not be opened or checked).
        """)

    @Argument(help: "The store file (not mounted).") var store: String
    @Flag(name: [.long, .customShort("y")], help: "Fix what can safely be fixed.") var repair = false

    func run() throws {
        let result: FsckResult
        do throws(CLIError) {
            var st = stat()
            if stat(store, &st) != 0 { throw CLIError("store \(store): \(Support.errnoString())") }
            if let real = Support.realPath(store),
               let m = Support.mounts().first(where: { $0.fstype == "fuse.metafs" && $0.source == real }) {
                throw CLIError("store \(store) is mounted on \(m.mountpoint); unmount it first")
            }
            result = try StoreGlue.check(path: store, repair: repair)
        } catch let e {
            Support.printError(e.message)
            throw ExitCode(8)
        }
        for n in result.openNotes { print("note: \(n)") }
        if repair {
            for f in result.findings { print("found: \(f)") }
            for f in result.fixed { print("fixed: \(f)") }
        }
        for f in result.remaining { print(repair ? "left: \(f)" : f) }
        switch result.exitCode {
        case 0:
            print("metafs fsck: \(store): clean")
        case 1:
            print("metafs fsck: \(store): errors fixed (\(result.fixed.count) repairs); now clean")
        default:
            let n = result.remaining.count
            print("metafs fsck: \(store): \(n) finding\(n == 1 ? "" : "s") left uncorrected\(repair ? "" : " (run with --repair to fix what can be fixed)")")
        }
        if result.exitCode != 0 { throw ExitCode(result.exitCode) }
    }
}
