import Glibc
import MetaFS

// The CLI's calls into the Store, kept in one place.

enum StoreGlue {
    /// Creates a fresh store file of `size` bytes.
    static func create(path: String, size: UInt64, inodeCount: UInt64?, rootUID: UInt32, rootGID: UInt32) throws(CLIError) {
        do {
            try Store.create(path: path, size: size, inodeCount: inodeCount, rootUID: rootUID, rootGID: rootGID)
        } catch {
            throw CLIError("cannot create store \(path): \(error)")
        }
    }

    /// The findings of a check without repair (empty when clean).
    static func check(path: String) throws(CLIError) -> [String] {
        try check(path: path, repair: false).remaining
    }

    /// Opens the store for fsck (replaying its journal; with `repair`, restoring a damaged
    /// superblock from its backup and resetting a damaged journal), runs the check in passes, with
    /// `repair` fixes what it safely can and checks again, closes it.
    static func check(path: String, repair: Bool) throws(CLIError) -> FsckResult {
        let store: Store
        var result = FsckResult()
        do {
            let (s, notes, repairs) = try Store.openForFsck(path: path, repair: repair)
            store = s
            result.openNotes = notes
            result.openRepairs = repairs
        } catch {
            let hint = error.code == EIO && !repair ? " (metafs fsck --repair \(path) may fix it)" : ""
            throw CLIError("cannot open store \(path): \(error)\(hint)")
        }
        result.findings = store.check()
        if repair && !result.findings.isEmpty {
            let r = store.repair()
            result.fixed = r.fixed
            result.remaining = r.remaining
        } else {
            result.remaining = result.findings
        }
        do { try store.close() } catch { throw CLIError("cannot close store \(path): \(error)") }
        return result
    }
}
