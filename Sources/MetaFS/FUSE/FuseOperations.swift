import CFuse
import Glibc
import MetaCache

/// The request handlers: each decodes one libfuse low-level request, routes it to the control
/// directory or the file system, and replies. They are static functions (not closures in
/// main.swift, which would be MainActor-isolated and trap on libfuse's worker threads).
enum FuseOperations {
    // MARK: replies

    /// The shape of a handler that answers once: count and time the request, run `body`, and
    /// send its result with `reply`, or the error it throws. The service time ends before the
    /// reply is written (FuseStatistics).
    @inline(__always)
    static func serve<R>(_ req: fuse_req_t?, _ op: FuseOperation, reply: (fuse_req_t?, FuseContext, R) -> Void,
                         _ body: (FuseContext) throws(FSError) -> R) {
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(op)
        do throws(FSError) {
            let result = try body(c)
            c.stats.end(op, t0)
            reply(req, c, result)
        } catch {
            fail(req, c, op, t0, error)
        }
    }

    @inline(__always)
    static func replyOK(_ req: fuse_req_t?, _ c: FuseContext, _: Void) {
        fuse_reply_err(req, 0)
    }

    @inline(__always)
    static func fail(_ req: fuse_req_t?, _ c: FuseContext, _ op: FuseOperation, _ t0: UInt64, _ e: FSError) {
        c.stats.end(op, t0)
        c.stats.error(op)
        fuse_reply_err(req, e.code)
    }

    @inline(__always)
    static func entry(_ c: FuseContext, _ a: InodeAttributes) -> fuse_entry_param {
        if ControlInode.contains(a.ino) {
            return StatConversion.entry(from: a, entryTimeout: 0, attrTimeout: 0)
        }
        return StatConversion.entry(from: a, entryTimeout: c.options.entryTimeout, attrTimeout: c.options.attrTimeout)
    }

    @inline(__always)
    static func replyEntry(_ req: fuse_req_t?, _ c: FuseContext, _ a: InodeAttributes) {
        var e = entry(c, a)
        if fuse_reply_entry(req, &e) == -ENOENT, !ControlInode.contains(a.ino) {
            // The request was interrupted: the kernel did not take the lookup reference.
            c.fs.forget(a.ino, count: 1)
        }
    }

    @inline(__always)
    static func replyAttr(_ req: fuse_req_t?, _ c: FuseContext, _ a: InodeAttributes) {
        var st = StatConversion.stat(from: a)
        fuse_reply_attr(req, &st, ControlInode.contains(a.ino) ? 0 : c.options.attrTimeout)
    }

    /// Checks for the operations that create a name in `parent`: none in the control directory,
    /// and not the control directory's own name in the root.
    @inline(__always)
    static func checkCreate(_ parent: UInt64, _ name: UnsafeRawBufferPointer) throws(FSError) {
        if ControlInode.contains(parent) { throw FSError(EACCES) }
        if ControlDirectory.isReserved(parent: parent, name: name) { throw FSError(EEXIST) }
    }

    /// Checks for the operations that remove or rename a name in `parent`.
    @inline(__always)
    static func checkRemove(_ parent: UInt64, _ name: UnsafeRawBufferPointer) throws(FSError) {
        if ControlInode.contains(parent) { throw FSError(EACCES) }
        if ControlDirectory.isReserved(parent: parent, name: name) { throw FSError(EPERM) }
    }

    // MARK: session

    static func initialize(_ userdata: UnsafeMutableRawPointer?, _ conn: UnsafeMutablePointer<fuse_conn_info>?) {
        guard let userdata, let conn else { return }
        let c = Unmanaged<FuseContext>.fromOpaque(userdata).takeUnretainedValue()
        let capable = conn.pointee.capable
        func want(_ cap: Int32) { if capable & UInt32(cap) != 0 { conn.pointee.want |= UInt32(cap) } }
        func unwant(_ cap: Int32) { conn.pointee.want &= ~UInt32(cap) }
        want(FUSE_CAP_PARALLEL_DIROPS)      // lookups and readdirs in one directory run concurrently
        want(FUSE_CAP_READDIRPLUS)          // readdir returns attributes (saves a lookup per entry)
        want(FUSE_CAP_READDIRPLUS_AUTO)
        want(FUSE_CAP_ATOMIC_O_TRUNC)       // O_TRUNC arrives with open instead of a separate setattr
        want(FUSE_CAP_ASYNC_READ)
        want(FUSE_CAP_ASYNC_DIO)
        // Splice helps when data is already in a pipe or file descriptor; metafs replies from
        // memory (the store mapping), so splicing reads or writes would only add syscalls.
        unwant(FUSE_CAP_SPLICE_READ)
        unwant(FUSE_CAP_SPLICE_WRITE)
        unwant(FUSE_CAP_SPLICE_MOVE)
        unwant(FUSE_CAP_WRITEBACK_CACHE)    // data goes straight to the store
        unwant(FUSE_CAP_POSIX_ACL)
        conn.pointee.max_write = UInt32(clamping: c.options.maxWrite)
        conn.pointee.time_gran = 1
    }

    static func destroy(_ userdata: UnsafeMutableRawPointer?) {
        guard let userdata else { return }
        Unmanaged<FuseContext>.fromOpaque(userdata).takeUnretainedValue().shutdownOnce()
    }

    // MARK: names and attributes

    static func lookup(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
        serve(req, .lookup, reply: replyEntry) { c throws(FSError) in
            let n = try fuseName(name)
            let a: InodeAttributes
            if ControlInode.contains(parent) {
                a = try c.control.lookup(parent: parent, name: n)
            } else if ControlDirectory.isReserved(parent: parent, name: n) {
                a = try c.control.attributes(ControlInode.directory)
            } else {
                a = try c.fs.lookup(parent: parent, name: n)
            }
            return a
        }
    }

    static func forget(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ nlookup: UInt64) {
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(.forget)
        if !ControlInode.contains(ino) { c.fs.forget(ino, count: nlookup) }
        c.stats.end(.forget, t0)
        fuse_reply_none(req)
    }

    static func forgetMulti(_ req: fuse_req_t?, _ count: Int, _ forgets: UnsafeMutablePointer<fuse_forget_data>?) {
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(.forgetMulti)
        if let forgets {
            for i in 0..<count {
                let f = forgets[i]
                if !ControlInode.contains(f.ino) { c.fs.forget(f.ino, count: f.nlookup) }
            }
        }
        c.stats.end(.forgetMulti, t0)
        fuse_reply_none(req)
    }

    static func getattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        serve(req, .getattr, reply: replyAttr) { c throws(FSError) in
            ControlInode.contains(ino) ? try c.control.attributes(ino) : try c.fs.getattr(ino)
        }
    }

    static func setattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ attr: UnsafeMutablePointer<stat>?, _ toSet: Int32,
                        _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        serve(req, .setattr, reply: replyAttr) { c throws(FSError) in
            guard let attr else { throw FSError(EINVAL) }
            let changes = StatConversion.changes(from: attr.pointee, toSet: toSet)
            return ControlInode.contains(ino)
                ? try c.control.setattr(ino, changes)
                : try c.fs.setattr(ino, changes, caller: Caller(req))
        }
    }

    static func readlink(_ req: fuse_req_t?, _ ino: fuse_ino_t) {
        serve(req, .readlink, reply: { req, _, target in
            target.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { _ = fuse_reply_readlink(req, $0.baseAddress) }
            }
        }) { c throws(FSError) in
            if ControlInode.contains(ino) { throw FSError(EINVAL) }
            return try c.fs.readlink(ino) + [0]
        }
    }

    // MARK: creating and removing names

    static func mknod(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ mode: mode_t, _ rdev: dev_t) {
        serve(req, .mknod, reply: replyEntry) { c throws(FSError) in
            let n = try fuseName(name)
            try checkCreate(parent, n)
            return try c.fs.mknod(parent: parent, name: n, mode: mode, rdev: UInt64(rdev), caller: Caller(req))
        }
    }

    static func mkdir(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ mode: mode_t) {
        serve(req, .mkdir, reply: replyEntry) { c throws(FSError) in
            let n = try fuseName(name)
            try checkCreate(parent, n)
            return try c.fs.mkdir(parent: parent, name: n, mode: mode | 0o040000, caller: Caller(req))
        }
    }

    static func unlink(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
        serve(req, .unlink, reply: replyOK) { c throws(FSError) in
            let n = try fuseName(name)
            try checkRemove(parent, n)
            try c.fs.unlink(parent: parent, name: n)
        }
    }

    static func rmdir(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
        serve(req, .rmdir, reply: replyOK) { c throws(FSError) in
            let n = try fuseName(name)
            try checkRemove(parent, n)
            try c.fs.rmdir(parent: parent, name: n)
        }
    }

    static func symlink(_ req: fuse_req_t?, _ target: UnsafePointer<CChar>?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
        serve(req, .symlink, reply: replyEntry) { c throws(FSError) in
            let n = try fuseName(name)
            try checkCreate(parent, n)
            guard let target else { throw FSError(EINVAL) }
            let t = UnsafeRawBufferPointer(start: UnsafeRawPointer(target), count: strlen(target))
            return try c.fs.symlink(target: t, parent: parent, name: n, caller: Caller(req))
        }
    }

    static func rename(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ newParent: fuse_ino_t,
                       _ newName: UnsafePointer<CChar>?, _ flags: UInt32) {
        serve(req, .rename, reply: replyOK) { c throws(FSError) in
            let n = try fuseName(name), nn = try fuseName(newName)
            if ControlInode.contains(parent) || ControlInode.contains(newParent)
                || ControlDirectory.isReserved(parent: parent, name: n)
                || ControlDirectory.isReserved(parent: newParent, name: nn) {
                throw FSError(EPERM)
            }
            try c.fs.rename(parent: parent, name: n, newParent: newParent, newName: nn, flags: flags)
        }
    }

    static func link(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ newParent: fuse_ino_t, _ newName: UnsafePointer<CChar>?) {
        serve(req, .link, reply: replyEntry) { c throws(FSError) in
            let nn = try fuseName(newName)
            if ControlInode.contains(ino) { throw FSError(EPERM) }
            try checkCreate(newParent, nn)
            return try c.fs.link(ino, newParent: newParent, newName: nn)
        }
    }

    // MARK: files

    static func open(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(.open)
        do throws(FSError) {
            guard let fi else { throw FSError(EINVAL) }
            if ControlInode.contains(ino) {
                fi.pointee.fh = try c.control.open(ino, flags: fi.pointee.flags)
                fi.pointee.direct_io = 1       // rendered content: size unknown to the kernel
                c.stats.end(.open, t0)
                if fuse_reply_open(req, fi) == -ENOENT { c.control.release(fh: fi.pointee.fh) }
                return
            }
            fi.pointee.fh = try c.fs.open(ino, flags: fi.pointee.flags)
            fi.pointee.direct_io = c.options.directIO ? 1 : 0
            c.stats.end(.open, t0)
            if fuse_reply_open(req, fi) == -ENOENT { c.fs.release(ino, fh: fi.pointee.fh) }
        } catch {
            fail(req, c, .open, t0, error)
        }
    }

    static func create(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ mode: mode_t,
                       _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(.create)
        do throws(FSError) {
            guard let fi else { throw FSError(EINVAL) }
            let n = try fuseName(name)
            try checkCreate(parent, n)
            let (a, fh) = try c.fs.create(parent: parent, name: n, mode: mode, flags: fi.pointee.flags, caller: Caller(req))
            fi.pointee.fh = fh
            fi.pointee.direct_io = c.options.directIO ? 1 : 0
            var e = entry(c, a)
            c.stats.end(.create, t0)
            if fuse_reply_create(req, &e, fi) == -ENOENT {
                c.fs.release(a.ino, fh: fh)
                c.fs.forget(a.ino, count: 1)
            }
        } catch {
            fail(req, c, .create, t0, error)
        }
    }

    static func read(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(.read)
        do throws(FSError) {
            guard let fi, offset >= 0 else { throw FSError(EINVAL) }
            if ControlInode.contains(ino) {
                let bytes = try c.control.read(fh: fi.pointee.fh, offset: UInt64(offset), size: size)
                bytes.withUnsafeBytes { b in
                    c.stats.end(.read, t0)
                    _ = fuse_reply_buf(req, b.baseAddress?.assumingMemoryBound(to: CChar.self), b.count)
                }
                return
            }
            let buffer = ThreadBuffer.get(size)
            let n = try c.fs.read(ino, fh: fi.pointee.fh, offset: UInt64(offset), into: buffer)
            c.stats.bytes(.read, n)
            c.stats.end(.read, t0)
            fuse_reply_buf(req, buffer.baseAddress!.assumingMemoryBound(to: CChar.self), n)
        } catch {
            fail(req, c, .read, t0, error)
        }
    }

    static func write(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ buf: UnsafePointer<CChar>?, _ size: Int, _ offset: off_t,
                      _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(.write)
        do throws(FSError) {
            guard let fi, offset >= 0 else { throw FSError(EINVAL) }
            let data = UnsafeRawBufferPointer(start: UnsafeRawPointer(buf), count: buf == nil ? 0 : size)
            let n: Int
            if ControlInode.contains(ino) {
                n = try c.control.write(ino, fh: fi.pointee.fh, data: data)
            } else {
                n = try c.fs.write(ino, fh: fi.pointee.fh, offset: UInt64(offset), from: data)
                c.stats.bytes(.write, n)
            }
            c.stats.end(.write, t0)
            fuse_reply_write(req, n)
        } catch {
            fail(req, c, .write, t0, error)
        }
    }

    static func release(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(.release)
        if let fi {
            if ControlInode.contains(ino) { c.control.release(fh: fi.pointee.fh) } else { c.fs.release(ino, fh: fi.pointee.fh) }
        }
        c.stats.end(.release, t0)
        fuse_reply_err(req, 0)
    }

    static func fsync(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ datasync: Int32, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        serve(req, .fsync, reply: replyOK) { c throws(FSError) in
            if !ControlInode.contains(ino) { try c.fs.fsync(ino, datasync: datasync != 0) }
        }
    }

    // MARK: directories

    static func opendir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(.opendir)
        do throws(FSError) {
            guard let fi else { throw FSError(EINVAL) }
            if ControlInode.contains(ino) {
                guard c.control.isDirectory(ino) else { throw FSError(ENOTDIR) }
                fi.pointee.fh = 0
            } else {
                fi.pointee.fh = try c.fs.opendir(ino)
            }
            c.stats.end(.opendir, t0)
            if fuse_reply_open(req, fi) == -ENOENT, !ControlInode.contains(ino) { c.fs.releasedir(ino, fh: fi.pointee.fh) }
        } catch {
            fail(req, c, .opendir, t0, error)
        }
    }

    static func readdir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t,
                        _ fi: UnsafeMutablePointer<fuse_file_info>?, plus: Bool) {
        let c = FuseContext.of(req)
        let op: FuseOperation = plus ? .readdirplus : .readdir
        let t0 = c.stats.begin(op)
        let buffer = ThreadBuffer.get(size)
        let base = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
        var used = 0

        /// Adds one entry to the reply buffer; false (and nothing added) when it does not fit.
        func add(_ name: UnsafeRawBufferPointer, _ a: InodeAttributes, _ next: UInt64) -> Bool {
            withUnsafeTemporaryAllocation(of: CChar.self, capacity: name.count + 1) { cname in
                let raw = UnsafeMutableRawBufferPointer(cname)
                raw.copyMemory(from: name)
                cname[name.count] = 0
                let need: Int
                if plus {
                    var e: fuse_entry_param
                    let isDot = (name.count == 1 && name[0] == 0x2E) || (name.count == 2 && name[0] == 0x2E && name[1] == 0x2E)
                    if isDot {
                        // No lookup reference for "." and "..": ino 0 tells the kernel not to make an entry.
                        e = fuse_entry_param()
                        e.attr.st_ino = UInt(truncatingIfNeeded: a.ino)
                        e.attr.st_mode = a.mode
                    } else {
                        e = entry(c, a)
                    }
                    need = fuse_add_direntry_plus(req, base + used, size - used, cname.baseAddress, &e, off_t(truncatingIfNeeded: next))
                } else {
                    var st = stat()
                    st.st_ino = UInt(truncatingIfNeeded: a.ino)
                    st.st_mode = a.mode
                    need = fuse_add_direntry(req, base + used, size - used, cname.baseAddress, &st, off_t(truncatingIfNeeded: next))
                }
                if need > size - used { return false }
                used += need
                return true
            }
        }

        do throws(FSError) {
            guard let fi, offset >= 0 else { throw FSError(EINVAL) }
            if ControlInode.contains(ino) {
                try c.control.readdir(ino, offset: UInt64(offset)) { name, a, next in
                    var name = name
                    return name.withUTF8 { add(UnsafeRawBufferPointer($0), a, next) }
                }
            } else {
                try c.fs.readdir(ino, fh: fi.pointee.fh, offset: UInt64(offset), plus: plus) { name, a, next in
                    add(name, a, next)
                }
            }
            c.stats.end(op, t0)
            fuse_reply_buf(req, base, used)
        } catch {
            // Entries already in the buffer carry lookup references (readdirplus): send them.
            if used == 0 {
                fail(req, c, op, t0, error)
            } else {
                c.stats.end(op, t0)
                fuse_reply_buf(req, base, used)
            }
        }
    }

    static func releasedir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(.releasedir)
        if !ControlInode.contains(ino), let fi { c.fs.releasedir(ino, fh: fi.pointee.fh) }
        c.stats.end(.releasedir, t0)
        fuse_reply_err(req, 0)
    }

    static func fsyncdir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ datasync: Int32, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        serve(req, .fsyncdir, reply: replyOK) { c throws(FSError) in
            if !ControlInode.contains(ino) { try c.fs.fsyncdir(ino, datasync: datasync != 0) }
        }
    }

    // MARK: file system

    static func statfs(_ req: fuse_req_t?, _ ino: fuse_ino_t) {
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(.statfs)
        var s = StatConversion.statvfs(from: c.fs.statfs())
        c.stats.end(.statfs, t0)
        fuse_reply_statfs(req, &s)
    }

    static func fallocate(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ mode: Int32, _ offset: off_t, _ length: off_t,
                          _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        serve(req, .fallocate, reply: replyOK) { c throws(FSError) in
            if ControlInode.contains(ino) { throw FSError(EACCES) }
            guard offset >= 0, length > 0 else { throw FSError(EINVAL) }
            try c.fs.fallocate(ino, mode: mode, offset: UInt64(offset), length: UInt64(length))
        }
    }

    static func lseek(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ offset: off_t, _ whence: Int32, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        serve(req, .lseek, reply: { req, _, r in _ = fuse_reply_lseek(req, off_t(r)) }) { c throws(FSError) in
            // Not ENOSYS for control files: the kernel would stop sending lseek for the whole mount.
            if ControlInode.contains(ino) { throw FSError(ENXIO) }
            guard let fi else { throw FSError(EINVAL) }
            return try c.fs.lseek(ino, fh: fi.pointee.fh, offset: Int64(offset), whence: whence)
        }
    }

    // MARK: extended attributes

    static func setxattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?,
                         _ size: Int, _ flags: Int32) {
        // Written out rather than through serve(): Swift 6.3's optimizer crashes on this body
        // as a closure (CopyPropagation, ownership verifier).
        let c = FuseContext.of(req)
        let t0 = c.stats.begin(.setxattr)
        do throws(FSError) {
            if ControlInode.contains(ino) { throw FSError(EPERM) }
            let n = try xattrName(name)
            let v = UnsafeRawBufferPointer(start: UnsafeRawPointer(value), count: value == nil ? 0 : size)
            try c.fs.setxattr(ino, name: n, value: v, flags: flags)
            c.stats.end(.setxattr, t0)
            fuse_reply_err(req, 0)
        } catch {
            fail(req, c, .setxattr, t0, error)
        }
    }

    /// An xattr name from the kernel as a buffer (no NUL), checked. metafs has no POSIX ACLs
    /// (FUSE_CAP_POSIX_ACL is off), and the kernel then passes system.posix_acl_* through as
    /// ordinary xattrs: storing them would make `cp -a` believe it set the mode through an ACL
    /// (leaving 0600/0700). Refuse them as ext4 mounted noacl does.
    @inline(__always)
    static func xattrName(_ p: UnsafePointer<CChar>?) throws(FSError) -> UnsafeRawBufferPointer {
        guard let p else { throw FSError(EINVAL) }
        let n = UnsafeRawBufferPointer(start: UnsafeRawPointer(p), count: strlen(p))
        guard n.count > 0 else { throw FSError(EINVAL) }
        guard n.count <= 255 else { throw FSError(ERANGE) }
        if n.count >= 17 && n.prefix(17).elementsEqual("system.posix_acl_".utf8) { throw FSError(EOPNOTSUPP) }
        return n
    }

    /// ERANGE when the caller's buffer (`size`, 0 for a size probe) cannot hold `bytes`; checked
    /// before the reply, so the failure is counted as one.
    @inline(__always)
    static func checkXattrSize(_ bytes: [UInt8], _ size: Int) throws(FSError) {
        if size != 0 && bytes.count > size { throw FSError(ERANGE) }
    }

    /// Replies with `bytes`, or their size for a size-0 probe (`checkXattrSize` passed).
    static func replyXattr(_ req: fuse_req_t?, _ bytes: [UInt8], _ size: Int) {
        if size == 0 {
            fuse_reply_xattr(req, bytes.count)
        } else {
            bytes.withUnsafeBytes { b in _ = fuse_reply_buf(req, b.baseAddress?.assumingMemoryBound(to: CChar.self), b.count) }
        }
    }

    static func getxattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ size: Int) {
        serve(req, .getxattr, reply: { req, _, value in replyXattr(req, value, size) }) { c throws(FSError) in
            if ControlInode.contains(ino) { throw FSError(ENODATA) }
            let value = try c.fs.getxattr(ino, name: try xattrName(name))
            try checkXattrSize(value, size)
            return value
        }
    }

    static func listxattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int) {
        serve(req, .listxattr, reply: { req, _, names in replyXattr(req, names, size) }) { c throws(FSError) in
            let names = ControlInode.contains(ino) ? [] : try c.fs.listxattr(ino)
            try checkXattrSize(names, size)
            return names
        }
    }

    static func removexattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
        serve(req, .removexattr, reply: replyOK) { c throws(FSError) in
            if ControlInode.contains(ino) { throw FSError(EPERM) }
            let n = try xattrName(name)
            try c.fs.removexattr(ino, name: n)
        }
    }

    // MARK: the table

    /// The libfuse operations table (libfuse copies it in fuse_session_new).
    static func table() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { FuseOperations.initialize($0, $1) }
        ops.destroy = { FuseOperations.destroy($0) }
        ops.lookup = { FuseOperations.lookup($0, $1, $2) }
        ops.forget = { FuseOperations.forget($0, $1, $2) }
        ops.forget_multi = { FuseOperations.forgetMulti($0, $1, $2) }
        ops.getattr = { FuseOperations.getattr($0, $1, $2) }
        ops.setattr = { FuseOperations.setattr($0, $1, $2, $3, $4) }
        ops.readlink = { FuseOperations.readlink($0, $1) }
        ops.mknod = { FuseOperations.mknod($0, $1, $2, $3, $4) }
        ops.mkdir = { FuseOperations.mkdir($0, $1, $2, $3) }
        ops.unlink = { FuseOperations.unlink($0, $1, $2) }
        ops.rmdir = { FuseOperations.rmdir($0, $1, $2) }
        ops.symlink = { FuseOperations.symlink($0, $1, $2, $3) }
        ops.rename = { FuseOperations.rename($0, $1, $2, $3, $4, $5) }
        ops.link = { FuseOperations.link($0, $1, $2, $3) }
        ops.open = { FuseOperations.open($0, $1, $2) }
        ops.create = { FuseOperations.create($0, $1, $2, $3, $4) }
        ops.read = { FuseOperations.read($0, $1, $2, $3, $4) }
        ops.write = { FuseOperations.write($0, $1, $2, $3, $4, $5) }
        // No flush handler: metafs has nothing to do at close (data is in the store, metadata is
        // written back by commits), and libfuse answers FLUSH with ENOSYS, after which the kernel
        // stops sending it (fc->no_flush). That saves one round trip on every close(2).
        ops.release = { FuseOperations.release($0, $1, $2) }
        ops.fsync = { FuseOperations.fsync($0, $1, $2, $3) }
        ops.opendir = { FuseOperations.opendir($0, $1, $2) }
        ops.readdir = { FuseOperations.readdir($0, $1, $2, $3, $4, plus: false) }
        ops.readdirplus = { FuseOperations.readdir($0, $1, $2, $3, $4, plus: true) }
        ops.releasedir = { FuseOperations.releasedir($0, $1, $2) }
        ops.fsyncdir = { FuseOperations.fsyncdir($0, $1, $2, $3) }
        ops.statfs = { FuseOperations.statfs($0, $1) }
        ops.fallocate = { FuseOperations.fallocate($0, $1, $2, $3, $4, $5) }
        ops.setxattr = { FuseOperations.setxattr($0, $1, $2, $3, $4, $5) }
        ops.getxattr = { FuseOperations.getxattr($0, $1, $2, $3) }
        ops.listxattr = { FuseOperations.listxattr($0, $1, $2) }
        ops.removexattr = { FuseOperations.removexattr($0, $1, $2) }
        ops.lseek = { FuseOperations.lseek($0, $1, $2, $3, $4) }
        return ops
    }
}
