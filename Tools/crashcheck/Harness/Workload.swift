// Workloads for the crash harness, in the manner of ACE (Mohan et al., OSDI '18): up to three
// file-system operations over a small tree, each optionally followed by a persistence point
// (fsync, fdatasync or sync), the last one always.

/// A deterministic random number generator (SplitMix64), so a seed reproduces a workload.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One operation of a workload. Paths are relative to the root, '/'-separated.
public enum Operation: Sendable, Equatable, CustomStringConvertible {
    case creat(String)
    case mkdir(String)
    /// Write `length` bytes of `fill` at `offset` (appending, extending past a hole, or overwriting).
    case write(String, offset: UInt64, length: Int, fill: UInt8)
    case link(String, String)
    case unlink(String)
    case rename(String, String)
    case truncate(String, UInt64)
    /// mode 0 (allocate, may extend), 1 (KEEP_SIZE), 3 (PUNCH_HOLE | KEEP_SIZE).
    case fallocate(String, mode: Int32, offset: UInt64, length: UInt64)
    case symlink(target: String, String)
    case setxattr(String, name: String, value: String)
    case removexattr(String, name: String)
    case fsync(String)
    case fdatasync(String)
    case sync

    public var isPersistencePoint: Bool {
        switch self {
        case .fsync, .fdatasync, .sync: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .creat(let p): return "creat \(p)"
        case .mkdir(let p): return "mkdir \(p)"
        case .write(let p, let o, let n, let f): return "write \(p) offset=\(o) length=\(n) fill=0x\(String(f, radix: 16))"
        case .link(let a, let b): return "link \(a) \(b)"
        case .unlink(let p): return "unlink \(p)"
        case .rename(let a, let b): return "rename \(a) \(b)"
        case .truncate(let p, let n): return "truncate \(p) \(n)"
        case .fallocate(let p, let m, let o, let n): return "fallocate \(p) mode=\(m) offset=\(o) length=\(n)"
        case .symlink(let t, let p): return "symlink \(t) \(p)"
        case .setxattr(let p, let n, let v): return "setxattr \(p) \(n)=\(v)"
        case .removexattr(let p, let n): return "removexattr \(p) \(n)"
        case .fsync(let p): return "fsync \(p)"
        case .fdatasync(let p): return "fdatasync \(p)"
        case .sync: return "sync"
        }
    }
}

/// What a workload does, and the seed it came from.
public struct Workload: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var index: Int
    public var operations: [Operation]
    public var description: String { operations.map(\.description).joined(separator: "; ") }
}

// MARK: - The model: what the tree holds after each operation

/// A file-system object in the model.
public struct ModelNode: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case file, directory, symlink }
    public var kind: Kind
    public var content: [UInt8] = []
    public var target: String = ""
    public var xattrs: [String: String] = [:]
    /// The live inode number (filled in by the runner).
    public var ino: UInt64 = 0
}

/// The tree as the workload leaves it: path → node id, and the nodes.
public struct Model: Sendable {
    public var paths: [String: Int] = [:]
    public var nodes: [Int: ModelNode] = [:]
    var nextID = 1

    public init() {}

    public func node(_ path: String) -> ModelNode? { paths[path].flatMap { nodes[$0] } }
    public func exists(_ path: String) -> Bool { path.isEmpty || paths[path] != nil }
    public func isDirectory(_ path: String) -> Bool { path.isEmpty || node(path)?.kind == .directory }
    public func isFile(_ path: String) -> Bool { node(path)?.kind == .file }

    public static func parent(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return "" }
        return String(path[..<i])
    }
    public static func name(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: i)...])
    }

    /// Paths under `dir` (not `dir` itself).
    public func children(_ dir: String) -> [String] {
        paths.keys.filter { Model.parent($0) == dir }.sorted()
    }

    mutating func add(_ path: String, _ node: ModelNode) -> Int {
        let id = nextID
        nextID += 1
        nodes[id] = node
        paths[path] = id
        return id
    }

    /// Remove a name; the node goes when its last name does.
    mutating func removeName(_ path: String) {
        guard let id = paths.removeValue(forKey: path) else { return }
        if !paths.values.contains(id) { nodes[id] = nil }
    }

    /// Apply an operation (assumed valid: the generator only makes valid ones).
    public mutating func apply(_ op: Operation) {
        switch op {
        case .creat(let p): _ = add(p, ModelNode(kind: .file))
        case .mkdir(let p): _ = add(p, ModelNode(kind: .directory))
        case .write(let p, let offset, let length, let fill):
            guard let id = paths[p] else { return }
            let end = Int(offset) + length
            if nodes[id]!.content.count < end { nodes[id]!.content += [UInt8](repeating: 0, count: end - nodes[id]!.content.count) }
            for i in Int(offset)..<end { nodes[id]!.content[i] = Model.pattern(fill, i) }
        case .link(let a, let b):
            if let id = paths[a] { paths[b] = id }
        case .unlink(let p): removeName(p)
        case .rename(let a, let b):
            guard let id = paths[a] else { return }
            if a == b { return }
            if nodes[id]!.kind == .directory {
                if paths[b] != nil { removeName(b) }   // an empty directory
                let moved = paths.keys.filter { $0 == a || $0.hasPrefix(a + "/") }
                var updates: [(String, Int)] = []
                for old in moved { updates.append((b + old.dropFirst(a.count), paths[old]!)); paths[old] = nil }
                for (new, nid) in updates { paths[new] = nid }
            } else {
                if let other = paths[b], other == id { removeName(a); return }   // two links to one inode
                removeName(b)
                paths[a] = nil
                paths[b] = id
            }
        case .truncate(let p, let size):
            guard let id = paths[p] else { return }
            let n = Int(size)
            if nodes[id]!.content.count > n { nodes[id]!.content.removeLast(nodes[id]!.content.count - n) }
            else { nodes[id]!.content += [UInt8](repeating: 0, count: n - nodes[id]!.content.count) }
        case .fallocate(let p, let mode, let offset, let length):
            guard let id = paths[p] else { return }
            let end = Int(offset + length)
            if mode == 0, nodes[id]!.content.count < end {
                nodes[id]!.content += [UInt8](repeating: 0, count: end - nodes[id]!.content.count)
            } else if mode == 3 {
                for i in Int(offset)..<min(end, nodes[id]!.content.count) { nodes[id]!.content[i] = 0 }
            }
        case .symlink(let target, let p): _ = add(p, ModelNode(kind: .symlink, target: target))
        case .setxattr(let p, let name, let value):
            if let id = paths[p] { nodes[id]!.xattrs[name] = value }
        case .removexattr(let p, let name):
            if let id = paths[p] { nodes[id]!.xattrs[name] = nil }
        case .fsync, .fdatasync, .sync: break
        }
    }

    /// The byte a write with `fill` puts at file offset `i` (varies, so misplaced blocks show).
    static func pattern(_ fill: UInt8, _ i: Int) -> UInt8 { fill &+ UInt8(truncatingIfNeeded: i / 512) }
}

// MARK: - Generation

/// Makes workloads over a small tree: directories A, B, A/C; files foo, bar, A/foo, A/bar, B/foo,
/// B/bar; the setup leaves A, B, foo (with an xattr), A/foo and B/bar.
public struct WorkloadGenerator {
    public static let directories = ["A", "B", "A/C"]
    public static let files = ["foo", "bar", "A/foo", "A/bar", "B/foo", "B/bar"]
    public static let lengths = [1, 100, 4096, 5000, 9000]

    /// The tree every workload starts from.
    public static let setup: [Operation] = [
        .mkdir("A"), .mkdir("B"),
        .creat("foo"), .write("foo", offset: 0, length: 5000, fill: 0x10), .setxattr("foo", name: "user.a", value: "1"),
        .creat("A/foo"), .write("A/foo", offset: 0, length: 8292, fill: 0x20),
        .creat("B/bar"), .write("B/bar", offset: 0, length: 100, fill: 0x30),
    ]

    public static func setupModel() -> Model {
        var m = Model()
        for op in setup { m.apply(op) }
        return m
    }

    /// Workload `index` of the run with `seed`.
    public static func make(seed: UInt64, index: Int) -> Workload {
        var rng = SeededRandom(seed: seed &* 0x1000_0000_01B3 &+ UInt64(index) &* 0x9E37_79B9)
        var model = setupModel()
        var ops: [Operation] = []
        let count = Int.random(in: 1...3, using: &rng)
        for k in 0..<count {
            var op: Operation?
            for _ in 0..<50 where op == nil { op = candidate(&rng, model) }
            guard let op else { continue }
            ops.append(op)
            model.apply(op)
            if k == count - 1 || Int.random(in: 0..<10, using: &rng) < 6 {
                ops.append(persistence(&rng, model, after: op))
            }
        }
        if ops.isEmpty || !ops.last!.isPersistencePoint { ops.append(.sync) }
        return Workload(seed: seed, index: index, operations: ops)
    }

    /// fsync or fdatasync of a file the operation touched (or another file), or sync.
    static func persistence(_ rng: inout SeededRandom, _ m: Model, after op: Operation) -> Operation {
        var touched: [String] = []
        switch op {
        case .creat(let p), .write(let p, _, _, _), .truncate(let p, _), .fallocate(let p, _, _, _),
             .setxattr(let p, _, _), .removexattr(let p, _): touched = [p]
        case .link(_, let b), .rename(_, let b): touched = [b]
        default: break
        }
        touched = touched.filter { m.isFile($0) }
        let anyFile = m.paths.keys.filter { m.isFile($0) }.sorted()
        let r = Int.random(in: 0..<10, using: &rng)
        let file = touched.first ?? anyFile.randomElement(using: &rng)
        if r < 2 || file == nil { return .sync }
        return r < 7 ? .fsync(file!) : .fdatasync(file!)
    }

    static func candidate(_ rng: inout SeededRandom, _ m: Model) -> Operation? {
        let files = WorkloadGenerator.files.filter { m.isFile($0) }
        let existingDirs = WorkloadGenerator.directories.filter { m.isDirectory($0) && m.exists($0) }
        let freeFileNames = WorkloadGenerator.files.filter { !m.exists($0) && m.isDirectory(Model.parent($0)) }
        let freeDirNames = WorkloadGenerator.directories.filter { !m.exists($0) && m.isDirectory(Model.parent($0)) }
        let length = lengths.randomElement(using: &rng)!
        let fill = UInt8.random(in: 0x40...0xF0, using: &rng)
        switch Int.random(in: 0..<13, using: &rng) {
        case 0:
            return freeFileNames.randomElement(using: &rng).map { .creat($0) }
        case 1:
            return freeDirNames.randomElement(using: &rng).map { .mkdir($0) }
        case 2:   // append or extend past a hole
            guard let f = files.randomElement(using: &rng) else { return nil }
            let size = UInt64(m.node(f)!.content.count)
            let offset = Bool.random(using: &rng) ? size : size + UInt64(Int.random(in: 1...9000, using: &rng))
            return .write(f, offset: offset, length: length, fill: fill)
        case 3:   // overwrite inside the file
            guard let f = files.filter({ !m.node($0)!.content.isEmpty }).randomElement(using: &rng) else { return nil }
            let size = m.node(f)!.content.count
            let offset = Int.random(in: 0..<size, using: &rng)
            return .write(f, offset: UInt64(offset), length: min(length, max(1, size - offset)), fill: fill)
        case 4:
            guard let f = files.randomElement(using: &rng), let to = freeFileNames.randomElement(using: &rng) else { return nil }
            return .link(f, to)
        case 5:
            return files.randomElement(using: &rng).map { .unlink($0) }
        case 6:   // rename a file (to a new name or over another file) or a directory
            if Bool.random(using: &rng), let f = files.randomElement(using: &rng) {
                let targets = freeFileNames + files.filter { $0 != f }
                return targets.randomElement(using: &rng).map { .rename(f, $0) }
            }
            guard let d = existingDirs.randomElement(using: &rng) else { return nil }
            let emptyDirs = existingDirs.filter { $0 != d && m.children($0).isEmpty && !$0.hasPrefix(d + "/") }
            let targets = (freeDirNames + emptyDirs).filter { !$0.hasPrefix(d + "/") && $0 != d }
            return targets.randomElement(using: &rng).map { .rename(d, $0) }
        case 7:
            guard let f = files.randomElement(using: &rng) else { return nil }
            let size = m.node(f)!.content.count
            let to = [0, size / 2, max(0, size - 1), size + 3000, 4096].randomElement(using: &rng)!
            return .truncate(f, UInt64(to))
        case 8:
            guard let f = files.randomElement(using: &rng) else { return nil }
            let size = UInt64(m.node(f)!.content.count)
            let mode = [Int32(0), 1, 3].randomElement(using: &rng)!
            let offset = mode == 3 ? UInt64.random(in: 0...max(0, size), using: &rng) : [0, size, size + 100].randomElement(using: &rng)!
            return .fallocate(f, mode: mode, offset: offset, length: UInt64(length))
        case 9:
            guard let p = freeFileNames.randomElement(using: &rng) else { return nil }
            let target = Bool.random(using: &rng) ? "foo" : String(repeating: "t", count: 120)   // inline and block targets
            return .symlink(target: target, p)
        case 10, 11:
            let targets = files + existingDirs
            guard let p = targets.randomElement(using: &rng) else { return nil }
            let name = ["user.a", "user.b"].randomElement(using: &rng)!
            if Int.random(in: 0..<3, using: &rng) == 0, m.node(p)!.xattrs[name] != nil { return .removexattr(p, name: name) }
            return .setxattr(p, name: name, value: String(repeating: "v", count: Int.random(in: 1...200, using: &rng)))
        default:
            let withXattr = (files + existingDirs).filter { !(m.node($0)?.xattrs.isEmpty ?? true) }
            guard let p = withXattr.randomElement(using: &rng), let name = m.node(p)!.xattrs.keys.sorted().first else { return nil }
            return .removexattr(p, name: name)
        }
    }
}
