// The named workloads (issue 5): each reproduces one pattern memory-management developers describe
// for the "no page cache, huge metadata" case. They run on any directory (a metafs mount, or tmpfs
// or ext4 to compare), inside a fresh subdirectory, with system calls issued from several threads.

import Glibc

/// `tree`: a huge tree of small or empty files, created then walked with stat (as `find -ls`).
public struct TreeParameters: Sendable, Equatable {
    public var files = 60_000
    public var fanout = 10
    public var depth = 2
    /// Passes of the walk (readdir + stat of every entry) after the creation.
    public var walks = 2
    public var fileSize = 0
    public init() {}
    public static var quick: TreeParameters { var p = TreeParameters(); p.files = 3_000; p.fanout = 6; p.walks = 1; return p }
    var leaves: Int { var n = 1; for _ in 0..<depth { n *= fanout }; return n }
    var directories: Int { var n = 1, total = 0; for _ in 0..<depth { n *= fanout; total += n }; return total }
}

/// `negative`: lookups of random names that do not exist, flooding the cache with negative dentries.
public struct NegativeParameters: Sendable, Equatable {
    public var lookups = 200_000
    public var directories = 16
    /// Length of the looked-up names (over 40 bytes they go to the name slabs).
    public var nameLength = 24
    /// Percent of lookups that repeat a name already looked up (a negative dentry hit).
    public var reusePercent = 0.0
    public init() {}
    public static var quick: NegativeParameters { var p = NegativeParameters(); p.lookups = 8_000; return p }
}

/// `fragment`: many files created, a random majority deleted, the survivors kept hot by repeated
/// stat, so live objects are scattered thinly over many slab pages.
public struct FragmentParameters: Sendable, Equatable {
    public var files = 50_000
    /// Percent of the files that survive the deletion.
    public var keepPercent = 10.0
    /// Passes of stat over the survivors.
    public var passes = 10
    public var filesPerDirectory = 1000
    public init() {}
    public static var quick: FragmentParameters { var p = FragmentParameters(); p.files = 3_000; p.passes = 3; return p }
}

/// `extents`: sparse files written in small scattered pieces (one block at every `stride`-th block,
/// so neighbouring extents never merge) while several threads read and write them.
public struct ExtentsParameters: Sendable, Equatable {
    public var files = 8
    public var fileSize = 32 << 20
    public var blockSize = 4096
    /// Write only every stride-th block (2: a hole between every two written blocks).
    public var stride = 2
    public var ops = 400_000
    public var readPercent = 50.0
    public init() {}
    public static var quick: ExtentsParameters { var p = ExtentsParameters(); p.files = 4; p.fileSize = 4 << 20; p.ops = 4_000; return p }
    var slots: Int { max(1, fileSize / blockSize / max(1, stride)) }
}

/// `churn`: creates, renames, stats and unlinks mixed, leaving much metadata dirty.
public struct ChurnParameters: Sendable, Equatable {
    public var ops = 60_000
    /// Files each thread keeps at most (creates turn into unlinks beyond).
    public var maxFiles = 3000
    /// Directories per thread (renames move files between them).
    public var directories = 4
    /// Bytes written into each new file (0: empty files).
    public var writeBytes = 128
    public var createPercent = 35.0
    public var renamePercent = 20.0
    public var statPercent = 30.0
    public var unlinkPercent = 15.0
    public init() {}
    public static var quick: ChurnParameters { var p = ChurnParameters(); p.ops = 4_000; p.maxFiles = 500; return p }
}

/// A workload with its parameters.
public enum WorkloadSpec: Sendable, Equatable {
    case tree(TreeParameters)
    case negative(NegativeParameters)
    case fragment(FragmentParameters)
    case extents(ExtentsParameters)
    case churn(ChurnParameters)

    public static let names = ["tree", "negative", "fragment", "extents", "churn"]

    public static func defaults(_ name: String, quick: Bool = false) -> WorkloadSpec? {
        switch name {
        case "tree": return .tree(quick ? .quick : TreeParameters())
        case "negative": return .negative(quick ? .quick : NegativeParameters())
        case "fragment": return .fragment(quick ? .quick : FragmentParameters())
        case "extents": return .extents(quick ? .quick : ExtentsParameters())
        case "churn": return .churn(quick ? .quick : ChurnParameters())
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .tree: "tree"
        case .negative: "negative"
        case .fragment: "fragment"
        case .extents: "extents"
        case .churn: "churn"
        }
    }

    /// The same workload with its main count (files, lookups, operations) multiplied by `factor`
    /// (at least 1), for runs sized to a time budget.
    public func scaled(by factor: Double) -> WorkloadSpec {
        func n(_ v: Int) -> Int { max(1, Int((Double(v) * factor).rounded())) }
        switch self {
        case .tree(var p): p.files = n(p.files); return .tree(p)
        case .negative(var p): p.lookups = n(p.lookups); return .negative(p)
        case .fragment(var p): p.files = n(p.files); return .fragment(p)
        case .extents(var p): p.ops = n(p.ops); return .extents(p)
        case .churn(var p): p.ops = n(p.ops); return .churn(p)
        }
    }

    /// What the workload does, in one line.
    public var summary: String {
        switch self {
        case .tree(let p):
            return "\(p.files) files of \(p.fileSize) bytes in \(p.leaves) leaf directories (fanout \(p.fanout), depth \(p.depth)), \(p.walks) walk\(p.walks == 1 ? "" : "s")"
        case .negative(let p):
            return "\(p.lookups) lookups of missing \(p.nameLength)-byte names in \(p.directories) directories, \(WorkloadFormat.number(p.reusePercent))% repeated"
        case .fragment(let p):
            return "\(p.files) files, \(WorkloadFormat.number(100 - p.keepPercent))% deleted at random, \(p.passes) stat passes over the survivors"
        case .extents(let p):
            return "\(p.files) sparse files of \(p.fileSize >> 20) MiB, \(p.blockSize)-byte pieces at every \(p.stride == 1 ? "" : "\(p.stride)nd ")block, \(p.ops) ops, \(WorkloadFormat.number(p.readPercent))% reads"
        case .churn(let p):
            return "\(p.ops) ops: create \(WorkloadFormat.number(p.createPercent))%, rename \(WorkloadFormat.number(p.renamePercent))%, stat \(WorkloadFormat.number(p.statPercent))%, unlink \(WorkloadFormat.number(p.unlinkPercent))%; at most \(p.maxFiles) files per thread, \(p.writeBytes) bytes each"
        }
    }

    /// Checks the parameters; the message names the bad one.
    public func validate() -> String? {
        switch self {
        case .tree(let p):
            if p.files < 1 { return "--files must be at least 1" }
            if p.fanout < 1 || p.fanout > 1000 { return "--fanout must be 1...1000" }
            if p.depth < 0 || p.depth > 8 { return "--depth must be 0...8" }
            if p.leaves > 1_000_000 { return "fanout^depth must be at most 1000000 directories" }
            if p.walks < 0 { return "--walks must not be negative" }
            if p.fileSize < 0 || p.fileSize > 1 << 20 { return "--file-size must be 0...1M" }
        case .negative(let p):
            if p.lookups < 1 { return "--lookups must be at least 1" }
            if p.directories < 1 || p.directories > 100_000 { return "--directories must be 1...100000" }
            if p.nameLength < 8 || p.nameLength > 255 { return "--name-length must be 8...255" }
            if !(0...100).contains(p.reusePercent) { return "--reuse must be 0...100" }
        case .fragment(let p):
            if p.files < 1 { return "--files must be at least 1" }
            if !(0...100).contains(p.keepPercent) { return "--keep must be 0...100" }
            if p.passes < 0 { return "--passes must not be negative" }
            if p.filesPerDirectory < 1 { return "--files-per-directory must be at least 1" }
        case .extents(let p):
            if p.files < 1 || p.files > 10_000 { return "--files must be 1...10000" }
            if p.blockSize < 512 || p.blockSize > 1 << 20 || p.blockSize % 512 != 0 { return "--block-size must be a multiple of 512 in 512...1M" }
            if p.stride < 1 { return "--stride must be at least 1" }
            if p.fileSize < p.blockSize * p.stride { return "--file-size must hold at least one stride of blocks" }
            if p.ops < 1 { return "--ops must be at least 1" }
            if !(0...100).contains(p.readPercent) { return "--read-percent must be 0...100" }
        case .churn(let p):
            if p.ops < 1 { return "--ops must be at least 1" }
            if p.maxFiles < 1 { return "--max-files must be at least 1" }
            if p.directories < 1 || p.directories > 10_000 { return "--directories must be 1...10000" }
            if p.writeBytes < 0 || p.writeBytes > 1 << 20 { return "--write-bytes must be 0...1M" }
            let w = [p.createPercent, p.renamePercent, p.statPercent, p.unlinkPercent]
            if w.contains(where: { $0 < 0 }) || w.reduce(0, +) <= 0 { return "the operation weights must be non-negative and not all 0" }
        }
        return nil
    }
}

/// Options every workload takes.
public struct WorkloadOptions: Sendable, Equatable {
    public var threads = 4
    public var seed: UInt64 = 1
    /// Upper bound in seconds on the timed phases (walks, lookups, hot passes, I/O, churn).
    public var duration: Double? = nil
    /// The setting shown in progress lines (e.g. "policy=page").
    public var label = ""
    /// Name of the fresh directory the workload works in, under the mount point (default
    /// "wl-NAME-PID").
    public var directory: String? = nil
    /// Remove the workload's directory at the end (not part of the throughput).
    public var cleanup = false
    public init() {}
}

enum WorkloadFormat {
    static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String((v * 10).rounded() / 10)
    }
}

// MARK: - System call helpers (return 0 or errno)

@inline(__always) func sysStat(_ path: String) -> Int32 {
    var st = stat()
    return stat(path, &st) == 0 ? 0 : errno
}

/// stat(2) or lstat(2): errno (0 on success) and the attributes.
func sysStatInfo(_ path: String, follow: Bool = true) -> (Int32, stat) {
    var st = stat()
    let r = follow ? stat(path, &st) : lstat(path, &st)
    return (r == 0 ? 0 : errno, st)
}

@inline(__always) func sysMkdir(_ path: String) -> Int32 { mkdir(path, 0o755) == 0 ? 0 : errno }

/// Creates `path` (O_EXCL) and writes `size` bytes of `fill`.
func sysCreate(_ path: String, size: Int, fill: UInt8 = 0x61) -> (Int32, Int) {
    let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return (errno, 0) }
    var written = 0
    if size > 0 {
        let buf = [UInt8](repeating: fill, count: size)
        let n = buf.withUnsafeBytes { write(fd, $0.baseAddress, size) }
        if n != size {
            let e = n < 0 ? errno : EIO
            close(fd)
            return (e, 0)
        }
        written = n
    }
    return close(fd) == 0 ? (0, written) : (errno, written)
}

/// Removes a directory tree (no symlinks followed). Returns the number of names removed.
@discardableResult
func removeTree(_ path: String, _ ctx: PhaseContext) -> UInt64 {
    guard let dir = opendir(path) else { ctx.error("opendir", path, errno); return 0 }
    var names: [(String, Bool)] = []
    while let ent = readdir(dir) {
        let name = withUnsafePointer(to: &ent.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
        if name == "." || name == ".." { continue }
        names.append((name, ent.pointee.d_type == UInt8(DT_DIR)))
    }
    closedir(dir)
    var removed: UInt64 = 0
    for (name, isDir) in names {
        if ctx.stopRequest.requested { break }
        let p = path + "/" + name
        if isDir { removed += removeTree(p, ctx) }
        else if unlink(p) != 0 { ctx.error("unlink", p, errno) } else { removed += 1; ctx.done() }
    }
    if rmdir(path) != 0 { ctx.error("rmdir", path, errno) } else { removed += 1; ctx.done() }
    return removed
}

// MARK: - Running

public enum WorkloadRunner {
    /// Runs `spec` in a fresh directory under `mountpoint`. Never throws: every failure is an
    /// error in the result (`succeeded` false).
    public static func run(_ spec: WorkloadSpec, at mountpoint: String, options: WorkloadOptions,
                           stop: WorkloadStop = WorkloadStop(), monitor: WorkloadMonitor? = nil) -> WorkloadResult {
        let monitor = monitor ?? WorkloadMonitor(workload: spec.name, label: options.label)
        let name = options.directory ?? "wl-\(spec.name)-\(getpid())"
        let base = mountpoint + "/" + name
        let seq = PhaseSequence(root: mountpoint, monitor: monitor, stop: stop, duration: options.duration)
        var result = WorkloadResult(workload: spec.name, label: options.label, summary: spec.summary, seed: options.seed,
                                    threads: options.threads, directory: base, phases: [], errorMessages: [], notes: [],
                                    interrupted: false)
        if let problem = spec.validate() {
            result.errorMessages = [problem]
            result.phases = [WorkloadPhaseResult(name: "setup", ops: 0, errors: 1, seconds: 0)]
            return result
        }
        let threads = max(1, options.threads)
        let seed = options.seed
        switch spec {
        case .tree(let p): Tree.run(p, base: base, threads: threads, seed: seed, seq)
        case .negative(let p): Negative.run(p, base: base, threads: threads, seed: seed, seq)
        case .fragment(let p): Fragment.run(p, base: base, threads: threads, seed: seed, seq)
        case .extents(let p): Extents.run(p, base: base, threads: threads, seed: seed, seq)
        case .churn(let p): Churn.run(p, base: base, threads: threads, seed: seed, seq)
        }
        if options.cleanup && !stop.requested {
            if sysStatInfo(base, follow: false).0 == 0 {
                let failed = seq.failed
                seq.failed = false
                seq.phase("cleanup", measured: false) { ctx in removeTree(base, ctx) }
                seq.failed = seq.failed || failed
            }
        }
        result.phases = seq.results
        result.errorMessages = seq.messages
        result.notes = seq.notes
        result.interrupted = stop.requested
        return result
    }

    /// The first phase of every workload: make the fresh base directory.
    static func makeBase(_ base: String, _ ctx: PhaseContext) -> Bool {
        let e = sysMkdir(base)
        if e != 0 {
            ctx.error("mkdir", base, e, expected: e == EEXIST ? "a fresh directory (choose another --dir)" : nil)
            return false
        }
        ctx.done()
        return true
    }
}

// MARK: - tree

enum Tree {
    static func directory(_ base: String, level: Int, index: Int, fanout: Int) -> String {
        var digits: [Int] = []
        var i = index
        for _ in 0..<level { digits.append(i % fanout); i /= fanout }
        return base + digits.reversed().map { "/d\($0)" }.joined()
    }

    static func run(_ p: TreeParameters, base: String, threads: Int, seed: UInt64, _ seq: PhaseSequence) {
        let leaves = p.leaves
        seq.phase("create") { ctx in
            guard Workloads.makeBaseOK(base, ctx) else { return }
            var width = 1
            for level in 1...max(1, p.depth) where p.depth > 0 {
                width *= p.fanout
                let w = width
                runThreads(threads) { t in
                    var i = t
                    while i < w, !ctx.shouldStop {
                        let path = directory(base, level: level, index: i, fanout: p.fanout)
                        let e = sysMkdir(path)
                        if e != 0 { ctx.error("mkdir", path, e) } else { ctx.done() }
                        i += threads
                    }
                }
            }
            runThreads(threads) { t in
                var i = t
                while i < p.files, !ctx.shouldStop {
                    let path = directory(base, level: p.depth, index: i % leaves, fanout: p.fanout) + "/f\(i)"
                    let (e, n) = sysCreate(path, size: p.fileSize)
                    if e != 0 { ctx.error("create", path, e) } else { ctx.done(bytes: UInt64(n)) }
                    i += threads
                }
            }
        }
        guard p.walks > 0 else { return }
        seq.phase("walk", timed: true) { ctx in
            for pass in 0..<p.walks where !ctx.shouldStop {
                runThreads(threads) { t in
                    var rng = WorkloadRandom(seed: seed, stream: UInt64(pass * 1000 + t))
                    var mine = Array(stride(from: t, to: leaves, by: threads))
                    rng.shuffle(&mine)
                    for leaf in mine where !ctx.shouldStop {
                        let path = directory(base, level: p.depth, index: leaf, fanout: p.fanout)
                        let expected = p.files / leaves + (leaf < p.files % leaves ? 1 : 0)
                        let seen = walkDirectory(path, ctx)
                        if let seen, seen != expected, !ctx.shouldStop {
                            ctx.error("readdir \(path.dropFirst(ctx.root.count + 1)): \(seen) entries, expected \(expected)")
                        }
                    }
                }
            }
        }
    }

    /// readdir + fstatat of every entry (as `find -ls`); returns the number of entries.
    static func walkDirectory(_ path: String, _ ctx: PhaseContext) -> Int? {
        guard let dir = opendir(path) else { ctx.error("opendir", path, errno); return nil }
        defer { closedir(dir) }
        let fd = dirfd(dir)
        var count = 0
        ctx.done()
        while true {
            errno = 0
            guard let ent = readdir(dir) else {
                if errno != 0 { ctx.error("readdir", path, errno); return nil }
                break
            }
            let e: Int32 = withUnsafePointer(to: &ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { name -> Int32 in
                    if name[0] == 0x2E && (name[1] == 0 || (name[1] == 0x2E && name[2] == 0)) { return -1 }
                    var st = stat()
                    return fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno
                }
            }
            if e == -1 { continue }
            count += 1
            if e != 0 { ctx.error("stat", path + "/<entry \(count)>", e) } else { ctx.done() }
            if ctx.shouldStop { return nil }
        }
        return count
    }
}

enum Workloads {
    static func makeBaseOK(_ base: String, _ ctx: PhaseContext) -> Bool { WorkloadRunner.makeBase(base, ctx) }
}

// MARK: - negative

enum Negative {
    /// A name that no workload creates: letters and digits from a hash, always starting "nx".
    static func name(seed: UInt64, thread: Int, index: Int, length: Int) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var out: [UInt8] = [0x6E, 0x78]  // "nx"
        var h = WorkloadRandom.hash(seed, UInt64(thread) << 40 | UInt64(index))
        var k = 0
        while out.count < length {
            if k == 10 { h = WorkloadRandom.hash(h, UInt64(out.count)); k = 0 }
            out.append(alphabet[Int(h % 36)])
            h /= 36
            k += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func run(_ p: NegativeParameters, base: String, threads: Int, seed: UInt64, _ seq: PhaseSequence) {
        seq.phase("setup") { ctx in
            guard Workloads.makeBaseOK(base, ctx) else { return }
            for d in 0..<p.directories where !ctx.shouldStop {
                let e = sysMkdir(base + "/n\(d)")
                if e != 0 { ctx.error("mkdir", base + "/n\(d)", e) } else { ctx.done() }
            }
        }
        seq.phase("lookup", timed: true) { ctx in
            runThreads(threads) { t in
                var rng = WorkloadRandom(seed: seed, stream: UInt64(t))
                let share = p.lookups / threads + (t < p.lookups % threads ? 1 : 0)
                var i = 0
                while i < share, !ctx.shouldStop {
                    let index = i > 0 && p.reusePercent > 0 && rng.chance(p.reusePercent) ? rng.below(i) : i
                    let n = name(seed: seed, thread: t, index: index, length: p.nameLength)
                    let dir = Int(WorkloadRandom.hash(seed ^ 0x5A5A, UInt64(t) << 40 | UInt64(index)) % UInt64(p.directories))
                    let path = base + "/n\(dir)/" + n
                    let e = sysStat(path)
                    if e != ENOENT { ctx.error("stat", path, e, expected: "ENOENT") } else { ctx.done() }
                    i += 1
                }
            }
        }
    }
}

// MARK: - fragment

enum Fragment {
    static func survives(_ i: Int, seed: UInt64, keepPercent: Double) -> Bool {
        Double(WorkloadRandom.hash(seed, UInt64(i)) % 1_000_000) < keepPercent * 10_000
    }

    static func path(_ base: String, _ i: Int, _ p: FragmentParameters) -> String {
        base + "/d\(i / p.filesPerDirectory)/f\(i)"
    }

    static func run(_ p: FragmentParameters, base: String, threads: Int, seed: UInt64, _ seq: PhaseSequence) {
        let dirs = (p.files + p.filesPerDirectory - 1) / p.filesPerDirectory
        seq.phase("create") { ctx in
            guard Workloads.makeBaseOK(base, ctx) else { return }
            for d in 0..<dirs where !ctx.shouldStop {
                let e = sysMkdir(base + "/d\(d)")
                if e != 0 { ctx.error("mkdir", base + "/d\(d)", e) } else { ctx.done() }
            }
            runThreads(threads) { t in
                var i = t
                while i < p.files, !ctx.shouldStop {
                    let path = path(base, i, p)
                    let (e, _) = sysCreate(path, size: 0)
                    if e != 0 { ctx.error("create", path, e) } else { ctx.done() }
                    i += threads
                }
            }
        }
        seq.phase("delete") { ctx in
            runThreads(threads) { t in
                var i = t
                while i < p.files, !ctx.shouldStop {
                    if !survives(i, seed: seed, keepPercent: p.keepPercent) {
                        let path = path(base, i, p)
                        if unlink(path) != 0 { ctx.error("unlink", path, errno) } else { ctx.done() }
                    }
                    i += threads
                }
            }
        }
        guard p.passes > 0 else { return }
        seq.phase("hot", timed: true) { ctx in
            runThreads(threads) { t in
                var rng = WorkloadRandom(seed: seed, stream: UInt64(t))
                var mine = stride(from: t, to: p.files, by: threads).filter { survives($0, seed: seed, keepPercent: p.keepPercent) }
                for _ in 0..<p.passes where !ctx.shouldStop {
                    rng.shuffle(&mine)
                    for i in mine {
                        if ctx.shouldStop { break }
                        let path = path(base, i, p)
                        let e = sysStat(path)
                        if e != 0 { ctx.error("stat", path, e) } else { ctx.done() }
                    }
                }
            }
        }
    }
}

// MARK: - extents

enum Extents {
    /// Fills `buf` with the content of block `block` of file `file`: 8-byte words derived from the
    /// seed, the file and the block, so a read can tell a right block from a misplaced one.
    static func fill(_ buf: UnsafeMutableRawBufferPointer, seed: UInt64, file: Int, block: Int) {
        let h = WorkloadRandom.hash(seed ^ UInt64(file) &* 0x100_0000_01B3, UInt64(block)) | 0x0101_0101_0101_0101
        let words = buf.count / 8
        for k in 0..<words { buf.storeBytes(of: h &+ UInt64(k) &* 0x0001_0001_0001_0001, toByteOffset: k * 8, as: UInt64.self) }
    }

    static func run(_ p: ExtentsParameters, base: String, threads: Int, seed: UInt64, _ seq: PhaseSequence) {
        seq.phase("setup") { ctx in
            guard Workloads.makeBaseOK(base, ctx) else { return }
            for f in 0..<p.files where !ctx.shouldStop {
                let path = base + "/e\(f)"
                let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
                guard fd >= 0 else { ctx.error("create", path, errno); continue }
                if ftruncate(fd, off_t(p.fileSize)) != 0 { ctx.error("ftruncate", path, errno) }
                if close(fd) != 0 { ctx.error("close", path, errno) }
                ctx.done()
            }
        }
        seq.phase("io", timed: true) { ctx in
            runThreads(threads) { t in
                var rng = WorkloadRandom(seed: seed, stream: UInt64(t))
                var fds: [Int32] = []
                defer { for fd in fds { close(fd) } }
                for f in 0..<p.files {
                    let fd = open(base + "/e\(f)", O_RDWR | O_CLOEXEC)
                    if fd < 0 { ctx.error("open", base + "/e\(f)", errno); return }
                    fds.append(fd)
                }
                let expect = UnsafeMutableRawBufferPointer.allocate(byteCount: p.blockSize, alignment: 4096)
                let got = UnsafeMutableRawBufferPointer.allocate(byteCount: p.blockSize, alignment: 4096)
                defer { expect.deallocate(); got.deallocate() }
                let share = p.ops / threads + (t < p.ops % threads ? 1 : 0)
                var i = 0
                while i < share, !ctx.shouldStop {
                    i += 1
                    let f = rng.below(p.files)
                    let block = rng.below(p.slots) * p.stride
                    let offset = off_t(block) * off_t(p.blockSize)
                    fill(expect, seed: seed, file: f, block: block)
                    if rng.chance(p.readPercent) {
                        let n = pread(fds[f], got.baseAddress, p.blockSize, offset)
                        if n != p.blockSize {
                            ctx.error("pread", base + "/e\(f)@\(block)", n < 0 ? errno : EIO)
                            continue
                        }
                        // A block reads as zeros (never written) or its pattern. Each byte is one or
                        // the other even while a first write of that block is in flight; anything
                        // else is misplaced or corrupt data.
                        var zeros = 0, matches = 0, wrong = 0
                        for k in 0..<p.blockSize {
                            let b = got[k]
                            if b == expect[k] { matches += 1 } else if b == 0 { zeros += 1 } else { wrong += 1 }
                        }
                        if wrong > 0 {
                            ctx.error("read \(base.dropFirst(ctx.root.count + 1))/e\(f) block \(block): \(wrong) bytes are neither the written pattern nor zero")
                        } else {
                            if zeros > 0 && matches > 0 { ctx.note("torn read: a block read while its first write was in flight (part zeros, part data)") }
                            ctx.done(bytes: UInt64(n))
                        }
                    } else {
                        let n = pwrite(fds[f], expect.baseAddress, p.blockSize, offset)
                        if n != p.blockSize { ctx.error("pwrite", base + "/e\(f)@\(block)", n < 0 ? errno : EIO) } else { ctx.done(bytes: UInt64(n)) }
                    }
                }
            }
        }
    }
}

// MARK: - churn

enum Churn {
    static func run(_ p: ChurnParameters, base: String, threads: Int, seed: UInt64, _ seq: PhaseSequence) {
        seq.phase("setup") { ctx in
            guard Workloads.makeBaseOK(base, ctx) else { return }
            for t in 0..<threads {
                let e = sysMkdir(base + "/t\(t)")
                if e != 0 { ctx.error("mkdir", base + "/t\(t)", e); return }
                ctx.done()
                for d in 0..<p.directories where !ctx.shouldStop {
                    let path = base + "/t\(t)/d\(d)"
                    let e = sysMkdir(path)
                    if e != 0 { ctx.error("mkdir", path, e) } else { ctx.done() }
                }
            }
        }
        seq.phase("churn", timed: true) { ctx in
            let total = p.createPercent + p.renamePercent + p.statPercent + p.unlinkPercent
            runThreads(threads) { t in
                var rng = WorkloadRandom(seed: seed, stream: UInt64(t))
                var live: [(id: UInt32, dir: UInt16)] = []
                live.reserveCapacity(p.maxFiles)
                var nextID: UInt32 = 0
                func path(_ f: (id: UInt32, dir: UInt16)) -> String { base + "/t\(t)/d\(f.dir)/c\(f.id)" }
                let share = p.ops / threads + (t < p.ops % threads ? 1 : 0)
                var i = 0
                while i < share, !ctx.shouldStop {
                    i += 1
                    let r = Double(rng.next() >> 11) / Double(1 << 53) * total
                    var op = r < p.createPercent ? 0 : r < p.createPercent + p.renamePercent ? 1
                        : r < p.createPercent + p.renamePercent + p.statPercent ? 2 : 3
                    if live.isEmpty { op = 0 } else if op == 0 && live.count >= p.maxFiles { op = 3 }
                    switch op {
                    case 0:
                        let f = (id: nextID, dir: UInt16(rng.below(p.directories)))
                        nextID += 1
                        let (e, n) = sysCreate(path(f), size: p.writeBytes, fill: UInt8(0x41 + Int(f.id % 26)))
                        if e != 0 { ctx.error("create", path(f), e) } else { live.append(f); ctx.done(bytes: UInt64(n)) }
                    case 1:
                        let k = rng.below(live.count)
                        let to = (id: nextID, dir: UInt16(rng.below(p.directories)))
                        nextID += 1
                        if rename(path(live[k]), path(to)) != 0 { ctx.error("rename", path(live[k]), errno) } else { live[k] = to; ctx.done() }
                    case 2:
                        let f = live[rng.below(live.count)]
                        let (e, st) = sysStatInfo(path(f))
                        if e != 0 { ctx.error("stat", path(f), e) }
                        else if st.st_size != p.writeBytes { ctx.error("stat \(path(f).dropFirst(ctx.root.count + 1)): size \(st.st_size), expected \(p.writeBytes)") }
                        else { ctx.done() }
                    default:
                        let k = rng.below(live.count)
                        if unlink(path(live[k])) != 0 { ctx.error("unlink", path(live[k]), errno) } else { live.swapAt(k, live.count - 1); live.removeLast(); ctx.done() }
                    }
                }
            }
        }
    }
}
