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

    public enum Content: Sendable, Equatable {
        case slabinfo, stats, statsJSON, metrics, control
        /// `extent_shrinker_info`, in the shape of ext4's es_shrinker_info.
        case extentShrinkerInfo
        /// `shrinker/<name>/count` and `shrinker/<name>/scan`, in the shape of Linux's shrinker
        /// debugfs files (Documentation/admin-guide/mm/shrinker_debugfs.rst).
        case shrinkerCount(String)
        case shrinkerScan(String)
    }

    struct Node {
        let ino: UInt64
        let name: String
        /// nil: a directory.
        let content: Content?
        /// The directory holding it (the root for `.metafs` itself).
        let parent: UInt64
        var writable: Bool {
            switch content {
            case .control, .shrinkerScan: return true
            default: return false
            }
        }
        var mode: UInt32 {
            switch content {
            case nil: return 0o040000 | 0o555
            case .shrinkerScan: return 0o100000 | 0o200     // write-only, as in debugfs
            case .control: return 0o100000 | 0o644
            default: return 0o100000 | 0o444
            }
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
                                           ("metrics", .metrics), ("control", .control),
                                           ("extent_shrinker_info", .extentShrinkerInfo)]
        var nodes = [Node(ino: ControlInode.directory, name: ControlDirectory.name, content: nil,
                          parent: ControlDirectory.rootInode)]
        func add(_ name: String, _ content: Content?, in parent: UInt64) -> UInt64 {
            let ino = ControlInode.base + UInt64(nodes.count)
            nodes.append(Node(ino: ino, name: name, content: content, parent: parent))
            return ino
        }
        for f in files { _ = add(f.0, f.1, in: ControlInode.directory) }
        let shrinkers = add("shrinker", nil, in: ControlInode.directory)
        for name in fs.cache.reclaimer.shrinkerNames {
            let dir = add(name, nil, in: shrinkers)
            _ = add("count", .shrinkerCount(name), in: dir)
            _ = add("scan", .shrinkerScan(name), in: dir)
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
        let subdirectories = n.content == nil ? nodes.filter { $0.parent == n.ino && $0.content == nil }.count : 0
        return InodeAttributes(ino: n.ino, mode: n.mode, nlink: n.content == nil ? UInt32(2 + subdirectories) : 1,
                               uid: ownerUID, gid: ownerGID,
                               size: 0, blocks: 0, atime: mountTime, mtime: mountTime, ctime: mountTime, generation: 1)
    }

    /// Whether `ino` is one of the control directory's directories.
    public func isDirectory(_ ino: UInt64) -> Bool {
        guard let n = try? node(ino) else { return false }
        return n.content == nil
    }

    /// Lookup inside the control directory (or one of its subdirectories).
    public func lookup(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> InodeAttributes {
        let p = try node(parent)
        guard p.content == nil else { throw FSError(ENOTDIR) }
        if name.elementsEqual("..".utf8) { return try p.ino == ControlInode.directory ? rootAttributes() : attributes(p.parent) }
        if name.elementsEqual(".".utf8) { return try attributes(p.ino) }
        for n in nodes.dropFirst() where n.parent == parent && n.name.utf8.elementsEqual(name) { return try attributes(n.ino) }
        throw FSError(ENOENT)
    }

    private func rootAttributes() -> InodeAttributes {
        InodeAttributes(ino: ControlDirectory.rootInode, mode: 0o040755, nlink: 2, uid: 0, gid: 0)
    }

    /// Entries after `offset` ("." and ".." first).
    public func readdir(_ ino: UInt64, offset: UInt64,
                        _ emit: (_ name: String, _ attributes: InodeAttributes, _ nextOffset: UInt64) -> Bool) throws(FSError) {
        let dir = try node(ino)
        guard dir.content == nil else { throw FSError(ENOTDIR) }
        let up = dir.ino == ControlInode.directory ? rootAttributes() : try attributes(dir.parent)
        var entries: [(String, InodeAttributes)] = [(".", try attributes(ino)), ("..", up)]
        for n in nodes.dropFirst() where n.parent == ino { entries.append((n.name, try attributes(n.ino))) }
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
    /// A write to `shrinker/<name>/scan`: "<cgroup> <node> <nr_to_scan>" (see `scanWrite`).
    public func write(_ ino: UInt64, fh: UInt64, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        let n = try node(ino)
        guard n.writable else { throw FSError(EACCES) }
        if case .shrinkerScan(let name) = n.content {
            try scanWrite(shrinker: name, data)
            return data.count
        }
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
            case .shrink(let amount):
                let r = fs.shrink(amount)
                let what: String
                switch amount {
                case .objects(let n): what = "\(n)"
                case .percent(let p): what = ControlRendering.fixed(p, 1) + "%"
                case .bytes(let b): what = ControlRendering.humanBytes(b)
                }
                let s = fs.cache.reclaimer.settings
                result = "shrink \(what) (policy \(s.policy.rawValue), dirty \(s.dirty.rawValue)): " + ControlDirectory.describe(r) + "\n"
                last = result
                return result
            case .policy, .budget, .dirty, .segregate, .reclaimers, .limit, .negativeMax, .kernelInvalidate:
                result = applyReclaimSetting(command)
            }
            let ms = (ControlDirectory.monotonicSeconds() - start) * 1000
            result += " in \(ControlRendering.fixed(ms, 3)) ms\n"
            last = result
            return result
        }
    }

    /// A write to a shrinker's debugfs-style `scan` file, as mm/shrinker_debug.c takes it:
    /// "<cgroup inode id> <node id> <nr_to_scan>". The shrinkers are not memcg-aware, so the
    /// cgroup must be 0; the node must be 0 (one node); nr_to_scan 0 does nothing. Anything else
    /// is EINVAL. The scan runs once (with the current policy), as scan_objects would.
    func scanWrite(shrinker name: String, _ data: UnsafeRawBufferPointer) throws(FSError) {
        guard data.count <= 256, let text = String(validating: data, as: UTF8.self) else { throw FSError(EINVAL) }
        var line = Substring(text)
        if line.hasSuffix("\n") { line = line.dropLast() }
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 3,
              let cgroup = try? ControlArgument.count(fields[0]),
              let nodeID = try? ControlArgument.count(fields[1], max: 1 << 20),
              let nr = try? ControlArgument.count(fields[2], max: 1 << 40) else { throw FSError(EINVAL) }
        guard nodeID == 0, cgroup == 0 else { throw FSError(EINVAL) }
        guard nr > 0 else { return }
        _ = try commandState.withLock { (last: inout String) throws(FSError) -> Void in
            guard let r = fs.cache.reclaimer.scan(shrinker: name, nrToScan: Int(nr)) else { throw FSError(ENOENT) }
            last = "scan \(name) \(nr): " + ControlDirectory.describe(r) + "\n"
        }
    }

    /// "freed N objects, P pages (B); slab A -> B" for a reclaim report.
    static func describe(_ r: ReclaimReport) -> String {
        let per = r.perShrinker.map { "\($0.name) \($0.objects)/\($0.pages)" }.joined(separator: ", ")
        return "freed \(r.freedObjects) objects, \(r.freedPages) pages (\(ControlRendering.humanBytes(UInt64(r.freedBytes))))"
            + " in \(ControlRendering.fixed(Double(r.nanoseconds) / 1e6, 3)) ms"
            + "; scanned \(r.scanned); objects/pages by shrinker: \(per)"
            + "; slab \(ControlRendering.humanBytes(UInt64(r.slabBytesBefore))) -> \(ControlRendering.humanBytes(UInt64(r.slabBytesAfter)))"
            + (r.writebackBatches > 0 ? "; \(r.writebackBatches) writeback batch\(r.writebackBatches == 1 ? "" : "es")" : "")
    }

    /// Applies one reclaim knob (already validated by the parser) and says what it is now.
    private func applyReclaimSetting(_ command: ControlCommand) -> String {
        let reclaimer = fs.cache.reclaimer
        reclaimer.update { (s: inout ReclaimSettings) in
            switch command {
            case .policy(let p): s.policy = p
            case .budget(.bytes(let b)): s.budgetBytes = Int(b); s.budgetAuto = false
            case .budget(.off): s.budgetBytes = 0; s.budgetAuto = false
            case .budget(.auto): s.budgetBytes = 0; s.budgetAuto = true
            case .dirty(let d): s.dirty = d
            case .segregate(let on): s.segregate = on
            case .reclaimers(let n): s.reclaimers = n
            case .limit(let cache, let bytes): s.limits[cache] = bytes.map { Int($0) }
            case .negativeMax(let n): s.negativeMax = n.map { Int($0) } ?? 0
            case .kernelInvalidate(let on): s.kernelInvalidate = on
            default: break
            }
        }
        let s = reclaimer.settings
        func size(_ n: Int) -> String { n == 0 ? "off" : ControlRendering.humanBytes(UInt64(n)) }
        switch command {
        case .policy: return "policy: \(s.policy.rawValue)"
        case .budget: return "budget: \(s.budgetAuto ? "auto" : size(s.budgetBytes))"
        case .dirty: return "dirty: \(s.dirty.rawValue)"
        case .segregate: return "segregate: \(s.segregate ? "on" : "off")"
        case .reclaimers: return "reclaimers: \(s.reclaimers)"
        case .limit(let cache, _): return "limit \(cache): \(size(s.limits[cache] ?? 0))"
        case .negativeMax: return "negative_max: \(s.negativeMax == 0 ? "off" : String(s.negativeMax))"
        case .kernelInvalidate: return "kernel_invalidate: \(s.kernelInvalidate ? "on" : "off")"
        default: return ""
        }
    }

    /// The result of the last command ("" before the first).
    public var lastResult: String { commandState.withLock { $0 } }

    // MARK: rendering

    public func snapshot() -> ControlSnapshot {
        var snap = ControlSnapshot(statistics: fs.statistics(), fuse: fuseStatistics.snapshot(),
                                   uptimeSeconds: ControlDirectory.monotonicSeconds() - startMonotonic,
                                   reclaim: fs.cache.reclaimer.statistics())
        let i = fuseStatistics.invalidations
        snap.invalidations = (i.sent.load(ordering: .relaxed), i.notCached.load(ordering: .relaxed),
                              i.dropped.load(ordering: .relaxed), i.failed.load(ordering: .relaxed))
        return snap
    }

    public func render(_ content: Content) -> [UInt8] {
        switch content {
        case .slabinfo: return Array(fs.cache.slabinfo().utf8)
        case .stats: return Array(ControlRendering.stats(snapshot()).utf8)
        case .statsJSON: return Array(ControlRendering.json(snapshot()).utf8)
        case .metrics: return Array(ControlRendering.metrics(snapshot()).utf8)
        case .control: return Array(lastResult.utf8)
        case .extentShrinkerInfo: return Array(fs.cache.reclaimer.extentShrinkerInfo().utf8)
        case .shrinkerCount(let name): return Array((fs.cache.reclaimer.debugfsCount(shrinker: name) ?? "").utf8)
        case .shrinkerScan: return []
        }
    }
}
