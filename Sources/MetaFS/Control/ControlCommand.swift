// The language of `<mount>/.metafs/control`: one command per write, a keyword followed by
// whitespace-separated arguments. The parser is pure (no file system access) so that every
// rejection can be unit-tested; a command that does not parse fails the write with EINVAL and
// changes nothing.
//
// Adding a command (the reclaim work adds `shrink`, `policy`, `budget`, `dirty`, `segregate`,
// `reclaimers`, `limit`, `negative_max`): add a case to `ControlCommand`, a row to
// `ControlCommandParser.grammar`, and handle it in `ControlDirectory.execute`. The argument
// parsers in `ControlArgument` (sizes with K/M/G/T suffixes, percentages, counts, on/off, amounts)
// are shared with the CLI's mount options so that `--budget 256M` and `budget 256M` agree.

/// A parsed control command.
public enum ControlCommand: Equatable, Sendable {
    /// Commit every dirty object to the store.
    case sync
    /// Commit, then evict every clean unpinned object from the caches.
    case dropCaches
}

/// Why a command was rejected (the write fails with EINVAL; the message is for the CLI).
public struct ControlCommandError: Error, Equatable, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
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
    ]

    /// Every keyword with its usage, for help text and error messages.
    public static var usage: [String] { grammar.map { $0.rule.usage } }

    static func noArguments(_ keyword: String, _ args: [Substring]) throws(ControlCommandError) {
        guard args.isEmpty else { throw ControlCommandError("\(keyword) takes no arguments") }
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
