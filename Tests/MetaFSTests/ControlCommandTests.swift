import Glibc
import MetaCache
@testable import MetaFS
import Testing

@Suite struct ControlCommandTests {
    @Test func acceptsKnownCommands() throws {
        #expect(try ControlCommandParser.parse("sync") == .sync)
        #expect(try ControlCommandParser.parse("sync\n") == .sync)
        #expect(try ControlCommandParser.parse("  drop_caches \r\n") == .dropCaches)
        #expect(try ControlCommandParser.parse("drop_caches\t") == .dropCaches)
    }

    @Test(arguments: ["", "\n", "   ", "bogus", "SYNC", "sync now", "drop_caches 1", "sync\nsync", "sync\n\n",
                      "sync\0", "drop-caches", "\u{7F}sync"])
    func rejectsBadCommands(_ text: String) {
        #expect(throws: ControlCommandError.self) { try ControlCommandParser.parse(text) }
    }

    @Test func rejectsInvalidUTF8AndOversizedInput() {
        #expect(throws: ControlCommandError.self) { try ControlCommandParser.parse([0x73, 0x79, 0xFF, 0x63]) }
        #expect(throws: ControlCommandError.self) { try ControlCommandParser.parse([0xC0, 0x80]) }
        let big = [UInt8](repeating: 0x61, count: ControlCommandParser.maximumLength + 1)
        #expect(throws: ControlCommandError.self) { try ControlCommandParser.parse(big) }
        let huge = [UInt8](repeating: 0x20, count: 1 << 20)
        #expect(throws: ControlCommandError.self) { try ControlCommandParser.parse(huge) }
    }

    @Test func errorMessagesNameTheProblem() {
        do { _ = try ControlCommandParser.parse("frobnicate") } catch { #expect(error.message.contains("unknown command 'frobnicate'")) }
        do { _ = try ControlCommandParser.parse("") } catch { #expect(error.message.contains("empty")) }
        do { _ = try ControlCommandParser.parse("sync x") } catch { #expect(error.message.contains("no arguments")) }
    }

    @Test func sizes() throws {
        #expect(try ControlArgument.size("0") == 0)
        #expect(try ControlArgument.size("4096") == 4096)
        #expect(try ControlArgument.size("64K") == 64 << 10)
        #expect(try ControlArgument.size("256m") == 256 << 20)
        #expect(try ControlArgument.size("1G") == 1 << 30)
        #expect(try ControlArgument.size("1GiB") == 1 << 30)
        #expect(try ControlArgument.size("2GB") == 2 << 30)
        #expect(try ControlArgument.size("1.5G") == 3 << 29)
        #expect(try ControlArgument.size("3T") == 3 << 40)
        #expect(try ControlArgument.size("16383P") == 16383 << 50)
        for bad in ["", "G", "-1", "+1", "1X", "1.5", "1..5G", "1.G", "12iB", "18446744073709551616", "16384P", "1 G", "0x10", "1e3"] {
            #expect(throws: ControlCommandError.self, "\(bad)") { try ControlArgument.size(Substring(bad)) }
        }
    }

    @Test func countsPercentagesAmountsFlags() throws {
        #expect(try ControlArgument.count("18446744073709551615") == .max)
        #expect(throws: ControlCommandError.self) { try ControlArgument.count("18446744073709551616") }
        #expect(throws: ControlCommandError.self) { try ControlArgument.count("-3") }
        #expect(throws: ControlCommandError.self) { try ControlArgument.count("10", max: 9) }
        #expect(try ControlArgument.percent("25%") == 25)
        #expect(try ControlArgument.percent("12.5%") == 12.5)
        for bad in ["0%", "101%", "%", "25", "-5%", "1.2.3%", "abc%"] {
            #expect(throws: ControlCommandError.self, "\(bad)") { try ControlArgument.percent(Substring(bad)) }
        }
        #expect(try ControlArgument.amount("1000") == .objects(1000))
        #expect(try ControlArgument.amount("25%") == .percent(25))
        #expect(try ControlArgument.amount("64M") == .bytes(64 << 20))
        #expect(try ControlArgument.flag("on") == true)
        #expect(try ControlArgument.flag("off") == false)
        #expect(throws: ControlCommandError.self) { try ControlArgument.flag("maybe") }
        #expect(try ControlArgument.choice("page", ["lru", "page"]) == "page")
        #expect(throws: ControlCommandError.self) { try ControlArgument.choice("mru", ["lru", "page"]) }
    }
}

/// The control directory without a mount, over a real FileSystem on a temporary store.
@Suite struct ControlDirectoryTests {
    let fixture: FileSystemTests.Fixture
    var control: ControlDirectory { ControlDirectory(fs: fixture.fs, fuseStatistics: FuseStatistics(), ownerUID: 0, ownerGID: 0) }

    init() throws {
        fixture = try FileSystemTests.Fixture()
    }

    func lookup(_ c: ControlDirectory, _ name: String) throws -> InodeAttributes {
        let bytes = Array(name.utf8)
        return try bytes.withUnsafeBytes { b in try c.lookup(parent: ControlInode.directory, name: b) }
    }

    func write(_ c: ControlDirectory, _ ino: UInt64, fh: UInt64, _ bytes: [UInt8]) throws -> Int {
        try bytes.withUnsafeBytes { b in try c.write(ino, fh: fh, data: b) }
    }

    @Test func namesAndAttributes() throws {
        let c = control
        let names = ["slabinfo", "stats", "stats.json", "metrics", "control"]
        for name in names {
            let a = try lookup(c, name)
            #expect(ControlInode.contains(a.ino))
            #expect(a.mode & 0o170000 == 0o100000)
            #expect(a.mode & 0o222 == (name == "control" ? 0o200 : 0))
        }
        #expect(throws: FSError(ENOENT)) { try lookup(c, "nope") }
        let d = try c.attributes(ControlInode.directory)
        #expect(d.isDirectory && d.mode & 0o7777 == 0o555)
        var listed: [String] = []
        try c.readdir(ControlInode.directory, offset: 0) { name, _, _ in listed.append(name); return true }
        #expect(listed == [".", ".."] + names + ["extent_shrinker_info", "shrinker"])
        var resumed: [String] = []
        try c.readdir(ControlInode.directory, offset: 3) { name, _, _ in resumed.append(name); return resumed.count < 2 }
        #expect(resumed == ["stats", "stats.json"])
        #expect(ControlInode.directory > UInt64(UInt32.max) * 1024, "outside any store's inode range")
        ".metafs".utf8CString.dropLast().withUnsafeBytes { #expect(ControlDirectory.isReserved(parent: 1, name: $0)) }
        ".metafs".utf8CString.dropLast().withUnsafeBytes { #expect(!ControlDirectory.isReserved(parent: 2, name: $0)) }
    }

    @Test func readOnlyFilesRefuseWrites() throws {
        let c = control
        for name in ["slabinfo", "stats", "stats.json", "metrics"] {
            let ino = try lookup(c, name).ino
            #expect(throws: FSError(EACCES)) { try c.open(ino, flags: O_WRONLY) }
            #expect(throws: FSError(EACCES)) { try c.open(ino, flags: O_RDWR) }
            let fh = try c.open(ino, flags: O_RDONLY)
            #expect(throws: FSError(EACCES)) { try write(c, ino, fh: fh, Array("sync".utf8)) }
            var changes = AttributeChanges()
            changes.size = 0
            #expect(throws: FSError(EACCES)) { try c.setattr(ino, changes) }
            c.release(fh: fh)
        }
        var chmod = AttributeChanges()
        chmod.mode = 0o777
        #expect(throws: FSError(EPERM)) { try c.setattr(try lookup(c, "control").ino, chmod) }
        #expect(c.openHandleCount == 0)
    }

    @Test func controlCommandsAndResults() throws {
        let c = control
        let fs = fixture.fs
        _ = try fixture.mkdir(1, "dirty")
        #expect(fs.dirtyObjects > 0)
        let ino = try lookup(c, "control").ino
        let fh = try c.open(ino, flags: O_WRONLY | O_TRUNC)
        #expect(try write(c, ino, fh: fh, Array("sync\n".utf8)) == 5)
        #expect(fs.dirtyObjects == 0, "sync committed everything")
        let commits = fs.statistics().commits
        #expect(c.lastResult.hasPrefix("sync: ok"))
        let cachedBefore = fs.cache.statistics().reduce(0) { $0 + $1.activeObjects }
        #expect(try write(c, ino, fh: fh, Array("drop_caches".utf8)) == 11)
        #expect(fs.cache.statistics().reduce(0) { $0 + $1.activeObjects } < cachedBefore, "drop_caches evicted")
        let after = c.lastResult
        #expect(after.hasPrefix("drop_caches: freed"))
        for bad: [UInt8] in [[], Array("nonsense\n".utf8), [0xFF, 0xFE], Array(repeating: 0x61, count: 1 << 20), Array("sync sync".utf8)] {
            #expect(throws: FSError(EINVAL)) { try write(c, ino, fh: fh, bad) }
        }
        #expect(c.lastResult == after, "a rejected command changes nothing")
        _ = try fixture.mkdir(1, "dirty-again")
        #expect(fs.dirtyObjects > 0 && fs.statistics().commits == commits, "no rejected command synced")
        c.release(fh: fh)
        let rfh = try c.open(ino, flags: O_RDONLY)
        #expect(String(decoding: try c.read(fh: rfh, offset: 0, size: 4096), as: UTF8.self) == after)
        c.release(fh: rfh)
    }

    @Test func snapshotsAreTakenAtOpen() throws {
        let c = control
        let ino = try lookup(c, "stats.json").ino
        let fh = try c.open(ino, flags: O_RDONLY)
        let first = try c.read(fh: fh, offset: 0, size: 1 << 20)
        Thread_sleep(0.01)
        let again = try c.read(fh: fh, offset: 0, size: 1 << 20)
        #expect(first == again, "one open, one snapshot (uptime does not move)")
        let part = try c.read(fh: fh, offset: 10, size: 5)
        #expect(part == Array(first[10..<15]))
        #expect(try c.read(fh: fh, offset: UInt64(first.count + 10), size: 10).isEmpty)
        c.release(fh: fh)
        #expect(throws: FSError(EBADF)) { try c.read(fh: fh, offset: 0, size: 1) }
    }
}

func Thread_sleep(_ seconds: Double) { usleep(UInt32(seconds * 1e6)) }
