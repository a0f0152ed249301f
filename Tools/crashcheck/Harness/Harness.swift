import Glibc
import MetaCache
import MetaFS

// The crash harness: runs a workload against `FileSystem` (no mount) with the store in
// persisted-image mode, then recovers every crash state the workload can leave (after each
// durability barrier, and part-way through a sample of them), and checks each one.

/// One object as a stat/read of it shows.
public struct ObjectState: Sendable, Equatable, CustomStringConvertible {
    public var kind: ModelNode.Kind
    public var size: UInt64
    public var nlink: UInt32
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var mtime: Timespec
    public var xattrs: [String: String]
    public var content: [UInt8]

    /// The fields a crash must keep together (content is checked byte by byte).
    func sameStat(_ o: ObjectState) -> Bool {
        kind == o.kind && (kind == .directory || size == o.size) && nlink == o.nlink && mode == o.mode
            && uid == o.uid && gid == o.gid && mtime == o.mtime && xattrs == o.xattrs
    }

    public var description: String {
        "\(kind) size=\(size) nlink=\(nlink) mode=0o\(String(mode, radix: 8)) uid=\(uid) gid=\(gid) mtime=\(mtime.seconds).\(mtime.nanoseconds) xattrs=\(xattrs.keys.sorted())"
    }
}

/// A whole tree: the names (with which names share an object, and symlink targets) and the objects.
public struct TreeState: Sendable, Equatable {
    /// path → (kind, the first path naming the same object, symlink target).
    public var names: [String: Name]
    /// first path of an object → its state.
    public var objects: [String: ObjectState]
    /// Expected states only: first path of an object → the model's node id (stable across renames
    /// and links), and node id → first path.
    public var ids: [String: Int] = [:]
    public var pathOfID: [Int: String] = [:]

    public struct Name: Sendable, Equatable, CustomStringConvertible {
        public var kind: ModelNode.Kind
        public var object: String
        public var target: String
        public var description: String { "\(kind)\(object.isEmpty ? "" : " =\(object)")\(target.isEmpty ? "" : " -> \(target)")" }
    }

    public static func == (a: TreeState, b: TreeState) -> Bool { a.names == b.names && a.objects == b.objects }

    func namesDiff(_ o: TreeState) -> String {
        var out: [String] = []
        for p in Set(names.keys).union(o.names.keys).sorted() where names[p] != o.names[p] {
            out.append("\(p): \(names[p].map(\.description) ?? "absent") vs \(o.names[p].map(\.description) ?? "absent")")
        }
        return out.prefix(6).joined(separator: "; ")
    }
}

/// A failed crash state, with what reproduces it.
public struct CrashFailure: Sendable, CustomStringConvertible {
    public var workload: Workload
    public var state: String
    public var message: String
    public var description: String {
        "workload \(workload.index) (seed \(workload.seed)): [\(workload)]\n  crash state: \(state)\n  \(message)\n  reproduce: crashcheck --seed \(workload.seed) --only \(workload.index) --verbose"
    }
}

public struct HarnessOptions: Sendable {
    public var seed: UInt64 = 1
    public var workloads = 300
    /// Check only this workload (a reproducer).
    public var only: Int?
    /// Partial images sampled per barrier that has more than one unit.
    public var partialsPerBarrier = 1
    /// 64 (cache lines) or 4096 (pages).
    public var granularity = 64
    /// Also crash images where units stored to but not yet persisted were written back early (a
    /// cache eviction on real persistent memory): one per barrier that has any.
    public var earlyLanding = false
    /// Where store files go (a tmpfs is fastest).
    public var directory = "/dev/shm"
    public var storeSize: UInt64 = 2 << 20
    public var inodes: UInt64 = 128
    public var verbose = false
    public var log: (@Sendable (String) -> Void)?
    public init() {}
}

public struct HarnessReport: Sendable {
    public var workloads = 0
    public var crashStates = 0
    public var fullStates = 0
    public var partialStates = 0
    /// Partial states with early write-backs (counted in partialStates too).
    public var earlyStates = 0
    public var barriers = 0
    public var failures: [CrashFailure] = []
    public var seconds = 0.0
    public var summary: String {
        "\(workloads) workloads, \(crashStates) crash states (\(fullStates) after a barrier, \(partialStates) part-way through one\(earlyStates > 0 ? ", \(earlyStates) of them with early write-backs" : ""); \(barriers) barriers), \(failures.count) failures, \(String(format: "%.1f", seconds)) s"
    }
}

public enum CrashHarness {
    static let caller = Caller(uid: 0, gid: 0, pid: 1)

    /// Run `options.workloads` generated workloads (or the one `options.only` names) and check all
    /// their crash states.
    public static func run(_ options: HarnessOptions) -> HarnessReport {
        var report = HarnessReport()
        let start = monotonic()
        var template = Array("\(options.directory)/metafs-crash.XXXXXX".utf8CString)
        guard let d = mkdtemp(&template) else {
            report.failures.append(CrashFailure(workload: Workload(seed: options.seed, index: -1, operations: []), state: "setup",
                                                message: "cannot make a directory under \(options.directory)"))
            return report
        }
        let dir = String(cString: d)
        defer { removeTree(dir) }
        let indices = options.only.map { [$0] } ?? Array(0..<options.workloads)
        for i in indices {
            let w = WorkloadGenerator.make(seed: options.seed, index: i)
            if options.verbose { options.log?("workload \(i): \(w)") }
            runOne(w, dir: dir, options: options, report: &report)
            report.workloads += 1
        }
        report.seconds = monotonic() - start
        return report
    }

    // MARK: running a workload

    struct Recorded {
        var states: [TreeState]          // S_0 (after setup) ... S_n
        var persistedAfter: [Int]        // for each op index i, the last state index durable before op i ran
        var recording: PersistedImage
        var finalDurable: Int
    }

    static func runOne(_ w: Workload, dir: String, options: HarnessOptions, report: inout HarnessReport) {
        let path = dir + "/live.store"
        func fail(_ state: String, _ message: String) {
            report.failures.append(CrashFailure(workload: w, state: state, message: message))
            options.log?("FAIL " + report.failures.last!.description)
        }
        let recorded: Recorded
        do {
            recorded = try record(w, path: path, options: options)
        } catch {
            fail("live run", "\(error)")
            return
        }
        // Walk the crash states in barrier order.
        var cursor = CrashImageCursor(recorded.recording)
        var rng = SeededRandom(seed: w.seed ^ UInt64(w.index) &* 0x2545_F491_4F6C_DD1D)
        let image = dir + "/crash.store"
        report.barriers += cursor.count
        while let barrier = cursor.next {
            let op = barrier.tag
            let window = recorded.persistedAfter[op]...(op + 1)
            // Part-way through this barrier: a random subset of its units landed.
            if barrier.units > 1 {
                for k in 0..<options.partialsPerBarrier {
                    let p = [0.5, 0.1, 0.9][k % 3]
                    let landed = (0..<barrier.units).map { _ in Double.random(in: 0..<1, using: &rng) < p }
                    let what = "barrier \(barrier.index) (op \(op): \(w.operations[op])), part-way: \(landed.filter { $0 }.count)/\(barrier.units) units of \(barrier.granularity) bytes at store offset \(barrier.offset)"
                    if let m = check(cursor.partial(landed), path: image, states: recorded.states, window: window, verbose: options.verbose) { fail(what, m) }
                    report.partialStates += 1
                }
            }
            if options.earlyLanding && !barrier.pending.isEmpty {
                let early = barrier.pending.map { _ in Bool.random(using: &rng) }
                let landed = (0..<barrier.units).map { _ in Bool.random(using: &rng) }
                let what = "barrier \(barrier.index) (op \(op): \(w.operations[op])), part-way: \(landed.filter { $0 }.count)/\(barrier.units) units landed, and \(early.filter { $0 }.count)/\(early.count) units stored but not yet persisted written back early"
                if let m = check(cursor.partial(landed, early: early), path: image, states: recorded.states, window: window, verbose: options.verbose) { fail(what, m) }
                report.partialStates += 1
                report.earlyStates += 1
            }
            cursor.advance()
            let what = "after barrier \(barrier.index) (op \(op): \(w.operations[op]); store offset \(barrier.offset), \(barrier.bytes.count) bytes)"
            if let m = check(cursor.image, path: image, states: recorded.states, window: window, verbose: options.verbose) { fail(what, m) }
            report.fullStates += 1
        }
        // After the last operation (everything it persisted landed).
        let n = w.operations.count
        if let m = check(cursor.image, path: image, states: recorded.states, window: recorded.finalDurable...n, verbose: options.verbose) {
            fail("after the last operation", m)
        }
        report.fullStates += 1
        report.crashStates = report.fullStates + report.partialStates
    }

    static func openFileSystem(_ path: String) throws(FSError) -> FileSystem {
        var options = FileSystemOptions()
        options.flushInterval = 0
        var c = CacheConfiguration()
        c.shards = 4
        c.expectedObjects = 256
        return try FileSystem(storePath: path, cache: MetaCache(configuration: c), options: options)
    }

    /// Run the setup and the workload live, recording the persisted image and the expected states.
    static func record(_ w: Workload, path: String, options: HarnessOptions) throws -> Recorded {
        try Store.create(path: path, size: options.storeSize, inodeCount: options.inodes, rootUID: 0, rootGID: 0)
        let fs = try openFileSystem(path)
        var model = Model()
        for op in WorkloadGenerator.setup { try perform(op, fs, &model) }
        try fs.sync()
        let recording = try fs.store.startPersistedImage(granularity: options.granularity, trackEarlyLanding: options.earlyLanding)
        var states = [try snapshot(fs, model)]
        var persistedAfter: [Int] = []
        var durable = 0
        for (i, op) in w.operations.enumerated() {
            persistedAfter.append(durable)
            recording.tag = i
            do {
                try perform(op, fs, &model)
            } catch {
                throw HarnessError("live operation \(i) (\(op)) failed: \(error)")
            }
            states.append(try snapshot(fs, model))
            if op.isPersistencePoint { durable = i + 1 }
        }
        fs.store.stopPersistedImage()
        // The live file system must agree with the model before anything else is judged.
        let live = try walk(fs)
        if live.names != states.last!.names {
            throw HarnessError("the live tree differs from the model: \(live.namesDiff(states.last!))")
        }
        for (p, o) in states.last!.objects where live.objects[p]?.content != o.content {
            throw HarnessError("live content of \(p) differs from the model")
        }
        fs.shutdown()
        return Recorded(states: states, persistedAfter: persistedAfter, recording: recording, finalDurable: durable)
    }

    struct HarnessError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    // MARK: operations on the live file system

    static func resolve(_ fs: FileSystem, _ path: String) throws(FSError) -> UInt64 {
        var ino: UInt64 = 1
        for part in path.split(separator: "/") {
            ino = try bytes(Array(part.utf8)) { (n) throws(FSError) in try fs.lookup(parent: ino, name: n).ino }
        }
        return ino
    }

    static func bytes<R>(_ a: [UInt8], _ body: (UnsafeRawBufferPointer) throws(FSError) -> R) throws(FSError) -> R {
        let r: Result<R, FSError> = a.withUnsafeBytes { p in
            do throws(FSError) { return .success(try body(p)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    static func parentAndName(_ fs: FileSystem, _ path: String) throws(FSError) -> (UInt64, [UInt8]) {
        (try resolve(fs, Model.parent(path)), Array(Model.name(path).utf8))
    }

    static func perform(_ op: Operation, _ fs: FileSystem, _ model: inout Model) throws(FSError) {
        switch op {
        case .creat(let p):
            let (parent, name) = try parentAndName(fs, p)
            let (a, fh) = try bytes(name) { (n) throws(FSError) in try fs.create(parent: parent, name: n, mode: 0o644, flags: O_RDWR, caller: caller) }
            fs.release(a.ino, fh: fh)
        case .mkdir(let p):
            let (parent, name) = try parentAndName(fs, p)
            _ = try bytes(name) { (n) throws(FSError) in try fs.mkdir(parent: parent, name: n, mode: 0o755, caller: caller) }
        case .write(let p, let offset, let length, let fill):
            let ino = try resolve(fs, p)
            let data = (0..<length).map { Model.pattern(fill, Int(offset) + $0) }
            let fh = try fs.open(ino, flags: O_RDWR)
            defer { fs.release(ino, fh: fh) }
            let n = try bytes(data) { (b) throws(FSError) in try fs.write(ino, fh: fh, offset: offset, from: b) }
            guard n == length else { throw FSError(EIO, message: "short write \(n) of \(length)") }
        case .link(let a, let b):
            let ino = try resolve(fs, a)
            let (parent, name) = try parentAndName(fs, b)
            _ = try bytes(name) { (n) throws(FSError) in try fs.link(ino, newParent: parent, newName: n) }
        case .unlink(let p):
            let (parent, name) = try parentAndName(fs, p)
            try bytes(name) { (n) throws(FSError) in try fs.unlink(parent: parent, name: n) }
        case .rename(let a, let b):
            let (pa, na) = try parentAndName(fs, a)
            let (pb, nb) = try parentAndName(fs, b)
            try bytes(na) { (x) throws(FSError) in
                try bytes(nb) { (y) throws(FSError) in try fs.rename(parent: pa, name: x, newParent: pb, newName: y, flags: 0) }
            }
        case .truncate(let p, let size):
            var c = AttributeChanges()
            c.size = size
            _ = try fs.setattr(try resolve(fs, p), c, caller: caller)
        case .fallocate(let p, let mode, let offset, let length):
            try fs.fallocate(try resolve(fs, p), mode: mode, offset: offset, length: length)
        case .symlink(let target, let p):
            let (parent, name) = try parentAndName(fs, p)
            _ = try bytes(Array(target.utf8)) { (t) throws(FSError) in
                try bytes(name) { (n) throws(FSError) in try fs.symlink(target: t, parent: parent, name: n, caller: caller) }
            }
        case .setxattr(let p, let name, let value):
            let ino = try resolve(fs, p)
            try bytes(Array(name.utf8)) { (n) throws(FSError) in
                try bytes(Array(value.utf8)) { (v) throws(FSError) in try fs.setxattr(ino, name: n, value: v, flags: 0) }
            }
        case .removexattr(let p, let name):
            let ino = try resolve(fs, p)
            try bytes(Array(name.utf8)) { (n) throws(FSError) in try fs.removexattr(ino, name: n) }
        case .fsync(let p):
            try fs.fsync(try resolve(fs, p), datasync: false)
        case .fdatasync(let p):
            try fs.fsync(try resolve(fs, p), datasync: true)
        case .sync:
            try fs.sync()
        }
        model.apply(op)
    }

    /// The expected state after an operation: names and contents from the model, stat fields as
    /// the live file system reports them (getattr commits nothing, so recording does not change
    /// what reaches the store).
    static func snapshot(_ fs: FileSystem, _ model: Model) throws(FSError) -> TreeState {
        var names: [String: TreeState.Name] = [:]
        var objects: [String: ObjectState] = [:]
        var first: [Int: String] = [:]
        for p in model.paths.keys.sorted() { if first[model.paths[p]!] == nil { first[model.paths[p]!] = p } }
        for (p, id) in model.paths {
            let node = model.nodes[id]!
            names[p] = TreeState.Name(kind: node.kind, object: first[id]!, target: node.target)
            if first[id] == p {
                let a = try fs.getattr(try resolve(fs, p))
                objects[p] = ObjectState(kind: node.kind, size: a.size, nlink: a.nlink, mode: a.mode, uid: a.uid, gid: a.gid,
                                         mtime: a.mtime, xattrs: node.xattrs, content: node.content)
            }
        }
        let root = try fs.getattr(1)
        objects[""] = ObjectState(kind: .directory, size: root.size, nlink: root.nlink, mode: root.mode, uid: root.uid, gid: root.gid,
                                  mtime: root.mtime, xattrs: [:], content: [])
        var state = TreeState(names: names, objects: objects)
        for (id, p) in first { state.ids[p] = id; state.pathOfID[id] = p }
        state.ids[""] = 0
        state.pathOfID[0] = ""
        return state
    }

    /// Everything a recovered file system holds: every name, every object read in full.
    static func walk(_ fs: FileSystem) throws(FSError) -> TreeState {
        var names: [String: TreeState.Name] = [:]
        var objects: [String: ObjectState] = [:]
        var objectOf: [UInt64: String] = [:]
        var queue: [(String, UInt64)] = [("", 1)]
        var all: [(String, UInt64)] = []
        while let (dir, ino) = queue.popLast() {
            var entries: [[UInt8]] = []
            let fh = try fs.opendir(ino)
            try fs.readdir(ino, fh: fh, offset: 0, plus: false) { name, _, _ in
                let n = Array(name)
                if n != [0x2E] && n != [0x2E, 0x2E] { entries.append(n) }
                return true
            }
            fs.releasedir(ino, fh: fh)
            for n in entries {
                let a = try bytes(n) { (b) throws(FSError) in try fs.lookup(parent: ino, name: b) }
                let path = dir.isEmpty ? String(decoding: n, as: UTF8.self) : dir + "/" + String(decoding: n, as: UTF8.self)
                all.append((path, a.ino))
                if a.isDirectory { queue.append((path, a.ino)) }
            }
        }
        all.sort { $0.0 < $1.0 }
        for (path, ino) in all where objectOf[ino] == nil { objectOf[ino] = path }
        for (path, ino) in [("", UInt64(1))] + all {
            let a = try fs.getattr(ino)
            let kind: ModelNode.Kind = a.isDirectory ? .directory : (a.mode & S_IFMT == S_IFLNK ? .symlink : .file)
            var target = ""
            if kind == .symlink { target = String(decoding: try fs.readlink(ino), as: UTF8.self) }
            if !path.isEmpty { names[path] = TreeState.Name(kind: kind, object: objectOf[ino]!, target: target) }
            guard path.isEmpty || objectOf[ino] == path else { continue }
            var content: [UInt8] = []
            if kind == .file {
                let fh = try fs.open(ino, flags: O_RDONLY)
                defer { fs.release(ino, fh: fh) }
                content = [UInt8](repeating: 0, count: Int(a.size))
                var done = 0
                while done < content.count {
                    let r: Result<Int, FSError> = content.withUnsafeMutableBytes { b in
                        do throws(FSError) {
                            return .success(try fs.read(ino, fh: fh, offset: UInt64(done), into: UnsafeMutableRawBufferPointer(rebasing: b[done...])))
                        } catch { return .failure(error) }
                    }
                    let n = try r.get()
                    if n == 0 { break }
                    done += n
                }
                guard done == content.count else { throw FSError(EIO, message: "\(path): read \(done) of \(content.count) bytes") }
            }
            var xattrs: [String: String] = [:]
            if kind != .symlink || true {
                let list = try fs.listxattr(ino)
                for name in list.split(separator: 0) {
                    let v = try bytes(Array(name)) { (n) throws(FSError) in try fs.getxattr(ino, name: n) }
                    xattrs[String(decoding: name, as: UTF8.self)] = String(decoding: v, as: UTF8.self)
                }
            }
            objects[path] = ObjectState(kind: kind, size: a.size, nlink: a.nlink, mode: a.mode, uid: a.uid, gid: a.gid,
                                        mtime: a.mtime, xattrs: xattrs, content: content)
        }
        return TreeState(names: names, objects: objects)
    }

    /// Remove everything: files unlinked, directories removed deepest first.
    static func removeAll(_ fs: FileSystem, _ tree: TreeState) throws(FSError) {
        let paths = tree.names.keys.sorted { $0.count > $1.count }
        for p in paths {
            let (parent, name) = try parentAndName(fs, p)
            if tree.names[p]!.kind == .directory {
                try bytes(name) { (n) throws(FSError) in try fs.rmdir(parent: parent, name: n) }
            } else {
                try bytes(name) { (n) throws(FSError) in try fs.unlink(parent: parent, name: n) }
            }
        }
    }

    // MARK: checking one crash state

    /// Recover `image` as a mount would and check it against the states `window` allows. Returns
    /// nil when it passes, else what is wrong.
    static func check(_ image: [UInt8], path: String, states: [TreeState], window: ClosedRange<Int>, verbose: Bool) -> String? {
        do {
            try CrashImageCursor.write(image, to: path)
        } catch {
            return "cannot write the crash image: \(error)"
        }
        let fs: FileSystem
        do {
            fs = try openFileSystem(path)
        } catch {
            return "recovery refused the image: \(error)"
        }
        var shut = false
        defer { if !shut { fs.shutdown() } }
        let findings = fs.store.check()
        if !findings.isEmpty { return "fsck after recovery: \(findings.prefix(5).joined(separator: "; "))" }
        let tree: TreeState
        do {
            tree = try walk(fs)
        } catch {
            return "recovered tree not readable: \(error)"
        }
        if let m = match(tree, states: states, window: window) { return m }
        do {
            try removeAll(fs, tree)
        } catch {
            return "could not remove everything: \(error)"
        }
        do {
            let after = try fs.check()
            if !after.isEmpty { return "fsck after removing everything: \(after.prefix(5).joined(separator: "; "))" }
        } catch {
            return "check after removing everything failed: \(error)"
        }
        fs.shutdown()
        shut = true
        return nil
    }

    /// The recovered tree must be one of the states in `window` (everything durable at the last
    /// persistence point, and nothing but what operations since then made): the same names (so a
    /// rename is all or nothing), the same stat fields and xattrs; each byte of a file may hold a
    /// value it holds in that state or a later one in the window (data written in place lands
    /// ahead of the metadata that would make it visible, and writes are not atomic).
    static func match(_ tree: TreeState, states: [TreeState], window: ClosedRange<Int>) -> String? {
        let w = window.clamped(to: 0...(states.count - 1))
        var best: String?
        for j in w {
            let s = states[j]
            guard s.names == tree.names else {
                if best == nil, j == w.upperBound { best = "names match no state in \(w): vs state \(j): \(tree.namesDiff(s))" }
                continue
            }
            var problem: String?
            for (p, o) in s.objects {
                guard let r = tree.objects[p] else { problem = "\(p) missing"; break }
                if !r.sameStat(o) { problem = "\(p): recovered \(r) but state \(j) has \(o)"; break }
                if o.kind == .file && r.content != o.content {
                    // The contents the object named p has in states j... of the window.
                    var candidates: [[UInt8]] = []
                    let id = s.ids[p]
                    for k in j...w.upperBound {
                        // The same object in state k, whatever it is named there (renames, links).
                        guard let id, let key = states[k].pathOfID[id] else { continue }
                        if let ko = states[k].objects[key], ko.kind == .file { candidates.append(ko.content) }
                    }
                    if candidates.contains(r.content) { continue }
                    r.content.withUnsafeBufferPointer { rc in
                        for i in 0..<rc.count {
                            let v = rc[i]
                            var ok = false
                            for c in candidates where (i < c.count ? c[i] : 0) == v { ok = true; break }
                            if !ok { problem = "\(p): byte \(i) is 0x\(String(v, radix: 16)), held by no state in \(j)...\(w.upperBound)"; break }
                        }
                    }
                    if problem != nil { break }
                }
            }
            if problem == nil { return nil }
            best = (best.map { $0 + " | " } ?? "") + "state \(j): " + problem!
        }
        if best == nil {
            best = "names match no state in \(w): \(tree.namesDiff(states[w.upperBound]))"
        }
        return best
    }

    static func monotonic() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    static func removeTree(_ dir: String) {
        if let d = opendir(dir) {
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { unlink(dir + "/" + name) }
            }
            closedir(d)
        }
        rmdir(dir)
    }
}
