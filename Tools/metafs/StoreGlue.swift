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

    /// Opens the store (replaying its journal), runs the consistency check, closes it. Returns the
    /// findings (empty when clean).
    static func check(path: String) throws(CLIError) -> [String] {
        let store: Store
        do {
            store = try Store.open(path: path)
        } catch {
            throw CLIError("cannot open store \(path): \(error)")
        }
        let findings = store.check()
        do { try store.close() } catch { throw CLIError("cannot close store \(path): \(error)") }
        return findings
    }
}
