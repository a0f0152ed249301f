// The language of `<mount>/.metafs/control`: one command per write, a keyword followed by
// whitespace-separated arguments. The parser is pure (no file system access) so that every
// rejection can be unit-tested; a command that does not parse fails the write with EINVAL and
// changes nothing.
//
// Adding a command (the reclaim work adds `shrink`, `policy`, `budget`, `dirty`, `segregate`,
// `reclaimers`, `limit`, `negative_max`, `kernel_invalidate`): add a case to `ControlCommand`, a row to
// `ControlCommandParser.grammar`, and handle it in `ControlDirectory.execute`. The argument
// parsers in `ControlArgument` (sizes with K/M/G/T suffixes, percentages, counts, on/off, amounts)
// are shared with the CLI's mount options so that `--budget 256M` and `budget 256M` agree.

import MetaCache

/// A parsed control command.
public enum ControlCommand: Equatable, Sendable {
    /// Commit every dirty object to the store.
    case sync
    /// Commit, then evict every clean unpinned object from the caches.
    case dropCaches
    /// Reclaim now: N objects, N% of the slab pages, or a size of slab memory.
    case shrink(ControlAmount)
    case policy(ReclaimPolicy)
    /// The memory budget: a size, `off`, or `auto` (reclaim on memory pressure).
    case budget(BudgetValue)
    case dirty(DirtyMode)
    case segregate(Bool)
    case reclaimers(Int)
    /// Cap one cache (a shrinker name) at a size of slab memory; nil: no cap (`limit CACHE off`).
    case limit(cache: String, bytes: UInt64?)
    /// Bound on negative dentries; nil: none (`negative_max off`).
    case negativeMax(UInt64?)
    /// Tell the kernel to drop its dentry when metafs evicts one.
    case kernelInvalidate(Bool)
}

/// Why a command was rejected (the write fails with EINVAL; the message is for the CLI).
public struct ControlCommandError: Error, Equatable, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A budget setting.
public enum BudgetValue: Equatable, Sendable {
    case bytes(UInt64)
    case off
    /// Reclaim when the machine or the cgroup reports memory pressure (PSI).
    case auto
}

/// An amount of reclaim: `N` objects, `N%` of the caches, or a size (`64M`).
public enum ControlAmount: Equatable, Sendable {
    case objects(UInt64)
    case percent(Double)
    case bytes(UInt64)
}

/// Argument parsers with strict overflow and range checks.
public enum ControlArgument {
    /// A decimal count without sign: "0", "4096". Overflow, signs, and junk are errors.
    public static func count(_ s: Substring, max: UInt64 = .max) throws(ControlCommandError) -> UInt64 {
        guard !s.isEmpty, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw ControlCommandError("'\(s)' is not a number")
        }
        var v: UInt64 = 0
        for c in s.utf8 {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(c - 0x30))
            if o1 || o2 { throw ControlCommandError("'\(s)' is too large") }
            v = a
        }
        guard v <= max else { throw ControlCommandError("'\(s)' is larger than \(max)") }
        return v
    }

    /// A size in bytes: a number with an optional binary suffix K, M, G, T, P (optionally followed
    /// by "iB" or "B"), case-insensitive: "4096", "64K", "256M", "1GiB", "1.5G". Zero is allowed
    /// here; commands that need a positive size check for themselves.
    public static func size(_ s: Substring) throws(ControlCommandError) -> UInt64 {
        let units: [Character] = ["k", "m", "g", "t", "p"]
        var body = Substring(s.lowercased())
        var needsUnit = false
        if body.hasSuffix("ib") { body = body.dropLast(2); needsUnit = true }
        else if body.hasSuffix("b") { body = body.dropLast() }
        var shift: UInt64 = 0
        if let last = body.last, let i = units.firstIndex(of: last) {
            shift = 10 * UInt64(i + 1)
            body = body.dropLast()
        } else if needsUnit {
            throw ControlCommandError("'\(s)' is not a size")
        }
        guard !body.isEmpty else { throw ControlCommandError("'\(s)' is not a size") }
        if let dot = body.firstIndex(of: ".") {
            // Fractional sizes need a unit: "1.5G".
            let whole = body[..<dot], frac = body[body.index(after: dot)...]
            guard !frac.isEmpty, shift > 0, frac.count <= 9 else { throw ControlCommandError("'\(s)' is not a size") }
            let w = whole.isEmpty ? 0 : try count(whole)
            let f = try count(frac)
            let unit = UInt64(1) << shift
            let (wb, o1) = w.multipliedReportingOverflow(by: unit)
            var scale: UInt64 = 1
            for _ in 0..<frac.count { scale *= 10 }
            let fb = UInt64((Double(f) / Double(scale)) * Double(unit))
            let (total, o2) = wb.addingReportingOverflow(fb)
            if o1 || o2 { throw ControlCommandError("'\(s)' is too large") }
            return total
        }
        let n = try count(body)
        guard n <= (UInt64.max >> shift) else { throw ControlCommandError("'\(s)' is too large") }
        return n << shift
    }

    /// A percentage "N%" or "N.M%" with 0 < value <= 100.
    public static func percent(_ s: Substring) throws(ControlCommandError) -> Double {
        guard s.hasSuffix("%") else { throw ControlCommandError("'\(s)' is not a percentage") }
        let body = s.dropLast()
        guard !body.isEmpty, body.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }),
              body.utf8.filter({ $0 == 0x2E }).count <= 1, let v = Double(String(body)) else {
            throw ControlCommandError("'\(s)' is not a percentage")
        }
        guard v > 0, v <= 100 else { throw ControlCommandError("'\(s)' is not in (0%, 100%]") }
        return v
    }

    /// `N` (objects), `N%`, or a size with a suffix (`64M`).
    public static func amount(_ s: Substring) throws(ControlCommandError) -> ControlAmount {
        if s.hasSuffix("%") { return .percent(try percent(s)) }
        if let last = s.last, last.isLetter { return .bytes(try size(s)) }
        return .objects(try count(s))
    }

    /// "on"/"off" (also 1/0, yes/no, true/false).
    public static func flag(_ s: Substring) throws(ControlCommandError) -> Bool {
        switch s.lowercased() {
        case "on", "1", "yes", "true": return true
        case "off", "0", "no", "false": return false
        default: throw ControlCommandError("'\(s)' is not on or off")
        }
    }

    /// One of a fixed set of words.
    public static func choice(_ s: Substring, _ choices: [String]) throws(ControlCommandError) -> String {
        guard choices.contains(String(s)) else {
            throw ControlCommandError("'\(s)' is not one of \(choices.joined(separator: ", "))")
        }
        return String(s)
    }
}

/// The reclaim knobs' values, shared by the control commands and the mount options so that
/// `--budget 64M` and `budget 64M` accept and refuse the same things.
public enum ReclaimArgument {
    /// Caches that `limit` names (the shrinkers).
    public static let caches = ["dentry", "inode", "extent"]
    /// Largest size accepted for a budget or limit (1 PiB: far beyond any machine, and well
    /// inside Int).
    public static let maximumSize: UInt64 = 1 << 50

    /// A budget: a size of at least 1 MiB (zero and negative budgets are refused), "off", or
    /// "auto".
    public static func budget(_ s: Substring) throws(ControlCommandError) -> BudgetValue {
        if s == "off" || s == "none" { return .off }
        if s == "auto" { return .auto }
        guard !s.hasPrefix("-") else { throw ControlCommandError("budget '\(s)' is negative") }
        let v = try ControlArgument.size(s)
        guard v > 0 else { throw ControlCommandError("budget must be positive") }
        guard v >= UInt64(ReclaimSettings.minimumBudget) else { throw ControlCommandError("budget '\(s)' is below the minimum of 1M") }
        guard v <= maximumSize else { throw ControlCommandError("budget '\(s)' is too large (at most 1P)") }
        return .bytes(v)
    }

    /// A per-cache limit: a positive size of at least one 4 KiB page, or "off".
    public static func limit(_ s: Substring) throws(ControlCommandError) -> UInt64? {
        if s == "off" || s == "none" { return nil }
        guard !s.hasPrefix("-") else { throw ControlCommandError("limit '\(s)' is negative") }
        let v = try ControlArgument.size(s)
        guard v >= 4096 else { throw ControlCommandError("limit '\(s)' is below one page (4K)") }
        guard v <= maximumSize else { throw ControlCommandError("limit '\(s)' is too large (at most 1P)") }
        return v
    }

    public static func policy(_ s: Substring) throws(ControlCommandError) -> ReclaimPolicy {
        guard let p = ReclaimPolicy(rawValue: String(s)) else {
            throw ControlCommandError("'\(s)' is not a policy (\(ReclaimPolicy.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return p
    }

    public static func dirty(_ s: Substring) throws(ControlCommandError) -> DirtyMode {
        guard let d = DirtyMode(rawValue: String(s)) else { throw ControlCommandError("'\(s)' is not skip or writeback") }
        return d
    }

    public static func reclaimers(_ s: Substring) throws(ControlCommandError) -> Int {
        let n = try ControlArgument.count(s, max: UInt64(ReclaimSettings.maxReclaimers))
        guard n >= 1 else { throw ControlCommandError("reclaimers must be 1...\(ReclaimSettings.maxReclaimers)") }
        return Int(n)
    }

    /// A bound on negative dentries: N >= 1 (at most 2^40), or "off".
    public static func negativeMax(_ s: Substring) throws(ControlCommandError) -> UInt64? {
        if s == "off" || s == "none" { return nil }
        let n = try ControlArgument.count(s, max: 1 << 40)
        guard n >= 1 else { throw ControlCommandError("negative_max must be at least 1 (or off)") }
        return n
    }

    public static func cache(_ s: Substring) throws(ControlCommandError) -> String {
        guard caches.contains(String(s)) else {
            throw ControlCommandError("'\(s)' is not a cache (\(caches.joined(separator: ", ")))")
        }
        return String(s)
    }

    /// `shrink`'s amount: N >= 1 objects, a percentage in (0, 100], or a positive size.
    public static func shrinkAmount(_ s: Substring) throws(ControlCommandError) -> ControlAmount {
        guard !s.hasPrefix("-") else { throw ControlCommandError("'\(s)' is negative") }
        let a = try ControlArgument.amount(s)
        switch a {
        case .objects(let n):
            guard n >= 1 else { throw ControlCommandError("shrink needs at least 1 object") }
            guard n <= 1 << 40 else { throw ControlCommandError("'\(s)' is too large") }
        case .bytes(let b):
            guard b > 0 else { throw ControlCommandError("shrink needs a positive size") }
            guard b <= maximumSize else { throw ControlCommandError("'\(s)' is too large") }
        case .percent: break
        }
        return a
    }
}

public enum ControlCommandParser {
    /// Writes longer than this are rejected outright (one command per write).
    public static let maximumLength = 4096

    /// keyword → (usage, build from arguments).
    typealias Rule = (usage: String, build: @Sendable ([Substring]) throws(ControlCommandError) -> ControlCommand)
    static let grammar: [(keyword: String, rule: Rule)] = [
        ("sync", ("sync", { (a: [Substring]) throws(ControlCommandError) -> ControlCommand in
            try noArguments("sync", a); return .sync })),
        ("drop_caches", ("drop_caches", { (a: [Substring]) throws(ControlCommandError) -> ControlCommand in
            try noArguments("drop_caches", a); return .dropCaches })),
        ("shrink", ("shrink N|N%|SIZE", { (a: [Substring]) throws(ControlCommandError) -> ControlCommand in
            try arguments("shrink", a, 1); return .shrink(try ReclaimArgument.shrinkAmount(a[0])) })),
        ("policy", ("policy lru|page|hybrid", { (a: [Substring]) throws(ControlCommandError) -> ControlCommand in
            try arguments("policy", a, 1); return .policy(try ReclaimArgument.policy(a[0])) })),
        ("budget", ("budget SIZE|off|auto", { (a: [Substring]) throws(ControlCommandError) -> ControlCommand in
            try arguments("budget", a, 1); return .budget(try ReclaimArgument.budget(a[0])) })),
        ("dirty", ("dirty skip|writeback", { (a: [Substring]) throws(ControlCommandError) -> ControlCommand in
            try arguments("dirty", a, 1); return .dirty(try ReclaimArgument.dirty(a[0])) })),
        ("segregate", ("segregate on|off", { (a: [Substring]) throws(ControlCommandError) -> ControlCommand in
            try arguments("segregate", a, 1); return .segregate(try ControlArgument.flag(a[0])) })),
        ("reclaimers", ("reclaimers N", { (a: [Substring]) throws(ControlCommandError) -> ControlCommand in
            try arguments("reclaimers", a, 1); return .reclaimers(try ReclaimArgument.reclaimers(a[0])) })),
        ("limit", ("limit dentry|inode|extent SIZE|off", { (a: [Substring]) throws(ControlCommandError) -> ControlCommand in
            try arguments("limit", a, 2)
            return .limit(cache: try ReclaimArgument.cache(a[0]), bytes: try ReclaimArgument.limit(a[1])) })),
        ("negative_max", ("negative_max N|off", { (a: [Substring]) throws(ControlCommandError) -> ControlCommand in
            try arguments("negative_max", a, 1); return .negativeMax(try ReclaimArgument.negativeMax(a[0])) })),
        ("kernel_invalidate", ("kernel_invalidate on|off", { (a: [Substring]) throws(ControlCommandError) -> ControlCommand in
            try arguments("kernel_invalidate", a, 1); return .kernelInvalidate(try ControlArgument.flag(a[0])) })),
    ]

    /// Every keyword with its usage, for help text and error messages.
    public static var usage: [String] { grammar.map { $0.rule.usage } }

    static func noArguments(_ keyword: String, _ args: [Substring]) throws(ControlCommandError) {
        guard args.isEmpty else { throw ControlCommandError("\(keyword) takes no arguments") }
    }

    static func arguments(_ keyword: String, _ args: [Substring], _ n: Int) throws(ControlCommandError) {
        guard args.count == n else {
            let usage = grammar.first { $0.keyword == keyword }?.rule.usage ?? keyword
            throw ControlCommandError("usage: \(usage)")
        }
    }

    /// Parses the bytes of one write. A single trailing newline (as `echo` writes) and surrounding
    /// blanks are allowed; empty input, several lines, NUL or other control bytes, invalid UTF-8,
    /// oversized input and unknown keywords are errors.
    public static func parse<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws(ControlCommandError) -> ControlCommand {
        guard bytes.count <= maximumLength else {
            throw ControlCommandError("command longer than \(maximumLength) bytes")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ControlCommandError("command is not valid UTF-8")
        }
        // Trim one trailing "\n" (or "\r\n") at the scalar level ("\r\n" is one Character).
        var scalars = Substring(text).unicodeScalars
        if scalars.last == "\n" { scalars = scalars.dropLast() }
        if scalars.last == "\r" { scalars = scalars.dropLast() }
        let line = Substring(scalars)
        for u in line.unicodeScalars where u.value < 0x20 && u != "\t" || u.value == 0x7F {
            throw ControlCommandError(u == "\n" ? "one command per write" : "command contains control characters")
        }
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let keyword = words.first else { throw ControlCommandError("empty command") }
        guard let rule = grammar.first(where: { $0.keyword == keyword })?.rule else {
            throw ControlCommandError("unknown command '\(keyword)' (known: \(grammar.map(\.keyword).joined(separator: ", ")))")
        }
        return try rule.build(Array(words.dropFirst()))
    }

    public static func parse(_ string: String) throws(ControlCommandError) -> ControlCommand {
        try parse(Array(string.utf8))
    }
}
