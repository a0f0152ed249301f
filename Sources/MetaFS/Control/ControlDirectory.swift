import Glibc
import MetaCache
import Synchronization

/// Reserved inode numbers of the control directory: far above any store inode number.
public enum ControlInode {
    public static let base: UInt64 = 0xFFFF_FFFF_FFFF_0000
    /// `<mount>/.metafs` itself.
    public static let directory: UInt64 = base
    @inline(__always) public static func contains(_ ino: UInt64) -> Bool { ino >= base }
}

/// `<mount>/.metafs/`: served by metafs, never stored. The FUSE layer routes `lookup(root,
/// ".metafs")` and every operation on a control inode here. The directory is hidden from the
/// root's readdir (so `find`, `cp -a`, `tar` and `rm -rf` of the mount do not see it) but can be
/// named. Contents are rendered when a file is opened, so the reads of one open see one snapshot.
public final class ControlDirectory: @unchecked Sendable {
    public static let name = ".metafs"
    public static let nameBytes: [UInt8] = Array(name.utf8)
    public static let rootInode: UInt64 = 1

    public enum Content: Sendable {
        case slabinfo, stats, statsJSON, metrics, control
    }

    struct Node {
        let ino: UInt64
        let name: String
        /// nil: the directory itself.
        let content: Content?
        var writable: Bool { content == .control }
        var mode: UInt32 {
            content == nil ? 0o040000 | 0o555 : 0o100000 | (writable ? 0o644 : 0o444)
        }
    }

    struct Handle {
        let ino: UInt64
        var data: [UInt8]
    }

    let fs: FileSystem
    let fuseStatistics: FuseStatistics
    let nodes: [Node]
    let mountTime: Timespec
    let startMonotonic: Double
    let ownerUID: UInt32
    let ownerGID: UInt32
    private let handles = Mutex<(next: UInt64, open: [UInt64: Handle])>((1, [:]))
    /// Serialises control commands; holds the result of the last one.
    private let commandState = Mutex<String>("")

    public init(fs: FileSystem, fuseStatistics: FuseStatistics,
                ownerUID: UInt32 = getuid(), ownerGID: UInt32 = getgid()) {
        self.fs = fs
        self.fuseStatistics = fuseStatistics
        self.ownerUID = ownerUID
        self.ownerGID = ownerGID
        let files: [(String, Content)] = [("slabinfo", .slabinfo), ("stats", .stats), ("stats.json", .statsJSON),
                                           ("metrics", .metrics), ("control", .control)]
        var nodes = [Node(ino: ControlInode.directory, name: ControlDirectory.name, content: nil)]
        for (i, f) in files.enumerated() {
            nodes.append(Node(ino: ControlInode.base + UInt64(i + 1), name: f.0, content: f.1))
        }
        self.nodes = nodes
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        self.mountTime = Timespec(now)
        self.startMonotonic = ControlDirectory.monotonicSeconds()
    }

    static func monotonicSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    func node(_ ino: UInt64) throws(FSError) -> Node {
        let i = ino &- ControlInode.base
        guard ControlInode.contains(ino), i < UInt64(nodes.count) else { throw FSError(ENOENT) }
        return nodes[Int(i)]
    }

    /// Is `name` in `parent` the control directory's name in the root (which nothing may create,
    /// remove or rename)?
    @inline(__always)
    public static func isReserved(parent: UInt64, name: UnsafeRawBufferPointer) -> Bool {
        parent == rootInode && name.count == 7 && name.elementsEqual(nameBytes)
    }

    // MARK: attributes and names

    public func attributes(_ ino: UInt64) throws(FSError) -> InodeAttributes {
        let n = try node(ino)
        return InodeAttributes(ino: n.ino, mode: n.mode, nlink: n.content == nil ? 2 : 1, uid: ownerUID, gid: ownerGID,
                               size: 0, blocks: 0, atime: mountTime, mtime: mountTime, ctime: mountTime, generation: 1)
    }

    /// Lookup inside the control directory.
    public func lookup(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> InodeAttributes {
        guard parent == ControlInode.directory else { throw FSError(ENOTDIR) }
        for n in nodes.dropFirst() where n.name.utf8.elementsEqual(name) { return try attributes(n.ino) }
        throw FSError(ENOENT)
    }

    /// Entries after `offset` ("." and ".." first).
    public func readdir(_ ino: UInt64, offset: UInt64,
                        _ emit: (_ name: String, _ attributes: InodeAttributes, _ nextOffset: UInt64) -> Bool) throws(FSError) {
        guard ino == ControlInode.directory else { throw FSError(ENOTDIR) }
        var entries: [(String, InodeAttributes)] = [(".", try attributes(ControlInode.directory)),
                                                    ("..", InodeAttributes(ino: ControlDirectory.rootInode, mode: 0o040755, nlink: 2, uid: 0, gid: 0))]
        for n in nodes.dropFirst() { entries.append((n.name, try attributes(n.ino))) }
        var i = Int(min(offset, UInt64(entries.count)))
        while i < entries.count {
            if !emit(entries[i].0, entries[i].1, UInt64(i + 1)) { return }
            i += 1
        }
    }

    /// setattr: only truncating `control` to 0 (as `echo cmd > control` does) is accepted, and ignored.
    public func setattr(_ ino: UInt64, _ changes: AttributeChanges) throws(FSError) -> InodeAttributes {
        let n = try node(ino)
        if n.writable, changes.size == 0, changes.mode == nil, changes.uid == nil, changes.gid == nil {
            return try attributes(ino)
        }
        if changes.size != nil { throw FSError(n.content == nil ? EISDIR : EACCES) }
        throw FSError(EPERM)
    }

    // MARK: open, read, write, release

    /// Opens a control file: renders its content into a new handle.
    public func open(_ ino: UInt64, flags: Int32) throws(FSError) -> UInt64 {
        let n = try node(ino)
        guard let content = n.content else { throw FSError(EISDIR) }
        let accessMode = flags & O_ACCMODE
        if accessMode != O_RDONLY && !n.writable { throw FSError(EACCES) }
        let data = accessMode == O_WRONLY ? [] : render(content)
        return handles.withLock { h in
            let fh = h.next
            h.next += 1
            h.open[fh] = Handle(ino: ino, data: data)
            return fh
        }
    }

    /// The rendered bytes of one handle from `offset`, at most `size`.
    public func read(fh: UInt64, offset: UInt64, size: Int) throws(FSError) -> [UInt8] {
        let r: [UInt8]? = handles.withLock { h in
            guard let handle = h.open[fh] else { return nil }
            let start = Int(min(offset, UInt64(handle.data.count)))
            let end = min(handle.data.count, start + size)
            return Array(handle.data[start..<end])
        }
        guard let r else { throw FSError(EBADF) }
        return r
    }

    /// A write to `control`: one command. EACCES on read-only files, EINVAL on a bad command.
    public func write(_ ino: UInt64, fh: UInt64, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        let n = try node(ino)
        guard n.writable else { throw FSError(EACCES) }
        let command: ControlCommand
        do {
            command = try ControlCommandParser.parse(data)
        } catch {
            throw FSError(EINVAL)
        }
        let result = try execute(command)
        handles.withLock { h in h.open[fh]?.data = Array(result.utf8) }
        return data.count
    }

    public func release(fh: UInt64) {
        _ = handles.withLock { h in h.open.removeValue(forKey: fh) }
    }

    /// Open control-file handles (for tests).
    public var openHandleCount: Int { handles.withLock { $0.open.count } }

    // MARK: commands

    /// Runs a command; returns (and remembers) its result text.
    public func execute(_ command: ControlCommand) throws(FSError) -> String {
        try commandState.withLock { (last: inout String) throws(FSError) -> String in
            let start = ControlDirectory.monotonicSeconds()
            var result: String
            switch command {
            case .sync:
                try fs.sync()
                result = "sync: ok"
            case .dropCaches:
                let before = UInt64(ProcessMemory.residentBytes())
                let freed = fs.dropCaches()
                let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
                result = "drop_caches: freed \(freed.objects) objects, \(freed.pages) pages (\(ControlRendering.humanBytes(UInt64(freed.pages * pageSize)))); rss \(ControlRendering.humanBytes(before)) -> \(ControlRendering.humanBytes(UInt64(ProcessMemory.residentBytes())))"
            }
            let ms = (ControlDirectory.monotonicSeconds() - start) * 1000
            result += " in \(ControlRendering.fixed(ms, 3)) ms\n"
            last = result
            return result
        }
    }

    /// The result of the last command ("" before the first).
    public var lastResult: String { commandState.withLock { $0 } }

    // MARK: rendering

    public func snapshot() -> ControlSnapshot {
        ControlSnapshot(statistics: fs.statistics(), fuse: fuseStatistics.snapshot(),
                        uptimeSeconds: ControlDirectory.monotonicSeconds() - startMonotonic)
    }

    public func render(_ content: Content) -> [UInt8] {
        switch content {
        case .slabinfo: return Array(fs.cache.slabinfo().utf8)
        case .stats: return Array(ControlRendering.stats(snapshot()).utf8)
        case .statsJSON: return Array(ControlRendering.json(snapshot()).utf8)
        case .metrics: return Array(ControlRendering.metrics(snapshot()).utf8)
        case .control: return Array(lastResult.utf8)
        }
    }
}
