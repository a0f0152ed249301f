import Glibc
import MetaFS

/// One line of /proc/mounts.
struct MountEntry {
    var source: String
    var mountpoint: String
    var fstype: String
    var options: String
}

enum Support {
    /// /proc/mounts, with its octal escapes (\040 for a space, ...) decoded.
    static func mounts() -> [MountEntry] {
        guard let text = readFile("/proc/mounts") else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: false)
            guard f.count >= 4 else { return nil }
            return MountEntry(source: unescape(f[0]), mountpoint: unescape(f[1]), fstype: String(f[2]), options: String(f[3]))
        }
    }

    static func unescape(_ s: Substring) -> String {
        var bytes: [UInt8] = []
        var u = Array(s.utf8)[...]
        while let b = u.first {
            if b == 0x5C, u.count >= 4, let v = UInt8(String(decoding: u.dropFirst().prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(v)
                u = u.dropFirst(4)
            } else {
                bytes.append(b)
                u = u.dropFirst()
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The metafs mount at `path`, if any.
    static func metafsMount(at path: String) -> MountEntry? {
        mounts().last { $0.mountpoint == path && $0.fstype == "fuse.metafs" }
    }

    static func isMountpoint(_ path: String) -> MountEntry? {
        mounts().last { $0.mountpoint == path }
    }

    /// The whole content of a (small) file, read to end of file (works for /proc and control files
    /// whose size is reported as 0).
    static func readFile(_ path: String) -> String? {
        guard let bytes = try? readBytes(path) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func readBytes(_ path: String) throws(CLIError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError("cannot open \(path): \(errnoString())") }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIError("cannot read \(path): \(errnoString())")
            }
            if n == 0 { break }
            out += chunk[..<n]
        }
        return out
    }

    static func errnoString(_ e: Int32 = errno) -> String { String(cString: strerror(e)) }

    /// An absolute, symlink-free path (the path itself must exist).
    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return path }
        let cwd = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return cwd == "/" ? "/" + path : cwd + "/" + path
    }

    static func monotonicSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    static func printError(_ message: String) {
        var m = "metafs: " + message
        if !m.hasSuffix("\n") { m += "\n" }
        eprint(m)
    }

    /// Writes to standard error (unbuffered).
    static func eprint(_ text: String) {
        var t = text
        t.withUTF8 { b in
            var off = 0
            while off < b.count {
                let n = write(2, b.baseAddress! + off, b.count - off)
                if n <= 0 { if errno == EINTR { continue }; return }
                off += n
            }
        }
    }

    /// Checks that let a mount fail early with a message naming the problem. Returns the resolved
    /// store path and mount point.
    static func preflight(store: String, mountpoint: String) throws(CLIError) -> (store: String, mountpoint: String) {
        var st = stat()
        if stat("/dev/fuse", &st) != 0 {
            throw CLIError("/dev/fuse is missing: load the fuse module (modprobe fuse), or give the container the device (--device /dev/fuse)")
        }
        if st.st_mode & S_IFMT != S_IFCHR {
            throw CLIError("/dev/fuse is not a character device")
        }
        if access("/dev/fuse", R_OK | W_OK) != 0 {
            throw CLIError("cannot open /dev/fuse: \(errnoString())")
        }
        if stat(store, &st) != 0 {
            let e = errno
            if e == ENOENT { throw CLIError("store \(store) does not exist (create one with: metafs mkfs \(store) --size SIZE)") }
            throw CLIError("cannot access store \(store): \(errnoString(e))")
        }
        if st.st_mode & S_IFMT != S_IFREG { throw CLIError("store \(store) is not a regular file") }
        if access(store, R_OK | W_OK) != 0 { throw CLIError("store \(store) is not readable and writable: \(errnoString())") }
        if stat(mountpoint, &st) != 0 {
            let e = errno
            if e == ENOENT { throw CLIError("mount point \(mountpoint) does not exist") }
            if e == ENOTCONN {
                throw CLIError("mount point \(mountpoint) is busy: a dead FUSE mount is still there (run: fusermount3 -u \(mountpoint))")
            }
            throw CLIError("cannot access mount point \(mountpoint): \(errnoString(e))")
        }
        if st.st_mode & S_IFMT != S_IFDIR { throw CLIError("mount point \(mountpoint) is not a directory") }
        guard let realStore = realPath(store), let realMount = realPath(mountpoint) else {
            throw CLIError("cannot resolve \(store) or \(mountpoint): \(errnoString())")
        }
        if let m = isMountpoint(realMount), m.mountpoint != "/" {
            throw CLIError("mount point \(realMount) is busy: \(m.source) (\(m.fstype)) is already mounted there")
        }
        if let m = mounts().first(where: { $0.fstype == "fuse.metafs" && $0.source == realStore }) {
            throw CLIError("store \(realStore) is already mounted on \(m.mountpoint)")
        }
        return (realStore, realMount)
    }
}
