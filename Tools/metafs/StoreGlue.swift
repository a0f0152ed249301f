import Glibc
import MetaFS

// The CLI's calls into the Store, kept in one place: the Store API (docs/INTERFACES.md) is being
// written in parallel. Build with `-Xswiftc -DMETAFS_STORE` (or delete the #else branch) once
// `Store` is merged.

enum StoreGlue {
    /// Creates a fresh store file of `size` bytes.
    static func create(path: String, size: UInt64, inodeCount: UInt64?, rootUID: UInt32, rootGID: UInt32) throws(CLIError) {
        #if METAFS_STORE
        do {
            try Store.create(path: path, size: size, inodeCount: inodeCount, rootUID: rootUID, rootGID: rootGID)
        } catch {
            throw CLIError("cannot create store \(path): \(error)")
        }
        #else
        throw CLIError("mkfs is not available in this build (the Store is not integrated yet)")
        #endif
    }

    /// Opens the store (replaying its journal), runs the consistency check, closes it. Returns the
    /// findings (empty when clean).
    static func check(path: String) throws(CLIError) -> [String] {
        #if METAFS_STORE
        let store: Store
        do {
            store = try Store.open(path: path)
        } catch {
            throw CLIError("cannot open store \(path): \(error)")
        }
        let findings = store.check()
        do { try store.close() } catch { throw CLIError("cannot close store \(path): \(error)") }
        return findings
        #else
        throw CLIError("fsck is not available in this build (the Store is not integrated yet)")
        #endif
    }
}
