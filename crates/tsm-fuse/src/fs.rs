//! The filesystem: `/` (configfs' `tsm`), `/report`, and one directory per report entry.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use cdvm_attestation::ReportData;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyWrite, Request, WriteFlags,
};

use crate::{Faults, ReportBackend};

const ROOT: u64 = 1;
const REPORT_DIR: u64 = 2;
/// Entry `k` has inode `ENTRY_BASE + k * STRIDE`; its attribute `i` the next ones.
const ENTRY_BASE: u64 = 16;
const STRIDE: u64 = 16;
/// Nothing is cached by the kernel: attributes change under the reader, as in configfs.
const TTL: Duration = Duration::ZERO;
/// `inblob` holds at most 64 bytes (TSM_INBLOB_MAX).
const INBLOB_MAX: usize = 64;
/// `privlevel` is 0..=3 (TSM_PRIVLEVEL_MAX).
const PRIVLEVEL_MAX: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attr {
    Inblob,
    Outblob,
    Auxblob,
    Provider,
    Generation,
    Privlevel,
    PrivlevelFloor,
}

impl Attr {
    const ALL: [Attr; 7] = [
        Attr::Inblob,
        Attr::Outblob,
        Attr::Auxblob,
        Attr::Provider,
        Attr::Generation,
        Attr::Privlevel,
        Attr::PrivlevelFloor,
    ];

    fn name(self) -> &'static str {
        match self {
            Attr::Inblob => "inblob",
            Attr::Outblob => "outblob",
            Attr::Auxblob => "auxblob",
            Attr::Provider => "provider",
            Attr::Generation => "generation",
            Attr::Privlevel => "privlevel",
            Attr::PrivlevelFloor => "privlevel_floor",
        }
    }

    fn index(self) -> u64 {
        Attr::ALL.iter().position(|a| *a == self).unwrap_or(0) as u64
    }

    /// Write-only attributes (`inblob`, `privlevel`); all others are read-only.
    fn writable(self) -> bool {
        matches!(self, Attr::Inblob | Attr::Privlevel)
    }

    /// Present only for a provider with privilege levels (SEV-SNP).
    fn snp_only(self) -> bool {
        matches!(self, Attr::Auxblob | Attr::Privlevel | Attr::PrivlevelFloor)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Root,
    ReportDir,
    Entry(u64),
    Attribute(u64, Attr),
}

fn node_of(ino: INodeNo) -> Option<Node> {
    match ino.0 {
        ROOT => Some(Node::Root),
        REPORT_DIR => Some(Node::ReportDir),
        n if n >= ENTRY_BASE => {
            let k = (n - ENTRY_BASE) / STRIDE;
            match (n - ENTRY_BASE) % STRIDE {
                0 => Some(Node::Entry(k)),
                i => Attr::ALL
                    .get((i - 1) as usize)
                    .map(|a| Node::Attribute(k, *a)),
            }
        }
        _ => None,
    }
}

fn ino_of(node: Node) -> INodeNo {
    INodeNo(match node {
        Node::Root => ROOT,
        Node::ReportDir => REPORT_DIR,
        Node::Entry(k) => ENTRY_BASE + k * STRIDE,
        Node::Attribute(k, a) => ENTRY_BASE + k * STRIDE + 1 + a.index(),
    })
}

/// One report entry, with the kernel's `struct tsm_report_state`.
#[derive(Debug, Default)]
struct Entry {
    name: String,
    inblob: Vec<u8>,
    privlevel: u32,
    write_generation: u64,
    read_generation: u64,
    /// `(outblob, auxblob)` of `read_generation`.
    cached: Option<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// tsm.c `try_advance_write_generation`: refuse once a full wrap of writes went unread.
    fn advance(&mut self) -> Result<(), Errno> {
        if self.write_generation == self.read_generation.wrapping_sub(1) {
            return Err(Errno::EBUSY);
        }
        self.write_generation = self.write_generation.wrapping_add(1);
        Ok(())
    }
}

#[derive(Debug)]
struct Handle {
    entry: u64,
    attr: Attr,
    buf: Vec<u8>,
    dirty: bool,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<u64, Entry>,
    next_entry: u64,
    handles: HashMap<u64, Handle>,
    next_handle: u64,
}

pub(crate) struct TsmFs {
    backend: Arc<dyn ReportBackend>,
    faults: Arc<Mutex<Faults>>,
    state: Mutex<State>,
}

impl TsmFs {
    pub(crate) fn new(backend: Arc<dyn ReportBackend>, faults: Arc<Mutex<Faults>>) -> Self {
        Self {
            backend,
            faults,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn visible(&self, attr: Attr) -> bool {
        !attr.snp_only() || self.backend.has_privlevel()
    }

    fn attr(&self, req: &Request, node: Node) -> FileAttr {
        let (kind, perm, nlink) = match node {
            Node::Root | Node::ReportDir | Node::Entry(_) => (FileType::Directory, 0o755, 2),
            Node::Attribute(_, a) if a.writable() => (FileType::RegularFile, 0o200, 1),
            Node::Attribute(..) => (FileType::RegularFile, 0o444, 1),
        };
        FileAttr {
            ino: ino_of(node),
            size: 0,
            blocks: 0,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: req.uid(),
            gid: req.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn exists(&self, node: Node) -> bool {
        match node {
            Node::Root | Node::ReportDir => true,
            Node::Entry(k) => self.state().entries.contains_key(&k),
            Node::Attribute(k, a) => self.visible(a) && self.state().entries.contains_key(&k),
        }
    }

    /// The bytes of a readable attribute, producing the report when the generation moved.
    fn read_attr(&self, k: u64, attr: Attr) -> Result<Vec<u8>, Errno> {
        let faults = self.faults().clone();
        let mut state = self.state();
        let entry = state.entries.get_mut(&k).ok_or(Errno::ENOENT)?;
        match attr {
            Attr::Provider if faults.no_provider => Err(Errno::ENXIO),
            Attr::Provider => Ok(format!("{}\n", self.backend.provider()).into_bytes()),
            Attr::Generation => Ok(format!("{}\n", entry.write_generation).into_bytes()),
            Attr::PrivlevelFloor => {
                Ok(format!("{}\n", self.backend.privlevel_floor()).into_bytes())
            }
            Attr::Outblob | Attr::Auxblob => {
                if faults.no_provider {
                    return Err(Errno::ENXIO);
                }
                if entry.inblob.is_empty() {
                    return Err(Errno::EINVAL);
                }
                if entry.cached.is_none() || entry.read_generation != entry.write_generation {
                    if faults.busy_reads > 0 {
                        self.faults().busy_reads -= 1;
                        return Err(Errno::EBUSY);
                    }
                    let mut inblob = [0u8; INBLOB_MAX];
                    inblob[..entry.inblob.len()].copy_from_slice(&entry.inblob);
                    let blobs = self
                        .backend
                        .report(&ReportData(inblob), entry.privlevel)
                        .map_err(|e| {
                            tracing::warn!("configfs-tsm emulation: {e}");
                            Errno::EIO
                        })?;
                    entry.cached = Some(blobs);
                    entry.read_generation = entry.write_generation;
                    if attr == Attr::Outblob && faults.interfere_after_outblob {
                        // Another process writes this entry's inblob right after our read.
                        self.faults().interfere_after_outblob = false;
                        entry.advance()?;
                    }
                }
                let (out, aux) = entry.cached.clone().unwrap_or_default();
                Ok(if attr == Attr::Outblob { out } else { aux })
            }
            Attr::Inblob | Attr::Privlevel => Err(Errno::EACCES),
        }
    }

    /// Stores a committed write (configfs calls the attribute's `store`).
    fn store(&self, k: u64, attr: Attr, bytes: &[u8]) -> Result<(), Errno> {
        let mut state = self.state();
        let entry = state.entries.get_mut(&k).ok_or(Errno::ENOENT)?;
        match attr {
            Attr::Inblob => {
                if bytes.len() > INBLOB_MAX {
                    return Err(Errno::EINVAL);
                }
                entry.advance()?;
                entry.inblob = bytes.to_vec();
                Ok(())
            }
            Attr::Privlevel => {
                let text = std::str::from_utf8(bytes).map_err(|_| Errno::EINVAL)?;
                let level: u32 = text.trim().parse().map_err(|_| Errno::EINVAL)?;
                if level > PRIVLEVEL_MAX || level < self.backend.privlevel_floor() {
                    return Err(Errno::EINVAL);
                }
                entry.advance()?;
                entry.privlevel = level;
                Ok(())
            }
            _ => Err(Errno::EACCES),
        }
    }

    /// Commits a pending `inblob` write (configfs binary attributes are stored on close).
    fn commit(&self, fh: u64) -> Result<(), Errno> {
        let pending = {
            let mut state = self.state();
            match state.handles.get_mut(&fh) {
                Some(h) if h.dirty => {
                    h.dirty = false;
                    Some((h.entry, h.attr, h.buf.clone()))
                }
                _ => None,
            }
        };
        match pending {
            Some((k, attr, buf)) => self.store(k, attr, &buf),
            None => Ok(()),
        }
    }
}

impl Filesystem for TsmFs {
    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_string_lossy();
        let found = match node_of(parent) {
            Some(Node::Root) if name == "report" => Some(Node::ReportDir),
            Some(Node::ReportDir) => self
                .state()
                .entries
                .iter()
                .find(|(_, e)| e.name == name)
                .map(|(k, _)| Node::Entry(*k)),
            Some(Node::Entry(k)) => Attr::ALL
                .iter()
                .find(|a| a.name() == name && self.visible(**a))
                .map(|a| Node::Attribute(k, *a)),
            _ => None,
        };
        match found {
            Some(node) if self.exists(node) => {
                reply.entry(&TTL, &self.attr(req, node), Generation(0));
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match node_of(ino) {
            Some(node) if self.exists(node) => reply.attr(&TTL, &self.attr(req, node)),
            _ => reply.error(Errno::ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Truncation from O_TRUNC is a no-op on configfs attributes.
        self.getattr(req, ino, None, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        if node_of(parent) != Some(Node::ReportDir) {
            return reply.error(Errno::EPERM);
        }
        let name = name.to_string_lossy().into_owned();
        let node = {
            let mut state = self.state();
            if state.entries.values().any(|e| e.name == name) {
                return reply.error(Errno::EEXIST);
            }
            let k = state.next_entry;
            state.next_entry += 1;
            state.entries.insert(
                k,
                Entry {
                    name,
                    ..Entry::default()
                },
            );
            Node::Entry(k)
        };
        reply.entry(&TTL, &self.attr(req, node), Generation(0));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if node_of(parent) != Some(Node::ReportDir) {
            return reply.error(Errno::EPERM);
        }
        let name = name.to_string_lossy();
        let mut state = self.state();
        let key = state
            .entries
            .iter()
            .find(|(_, e)| e.name == name)
            .map(|(k, _)| *k);
        match key {
            Some(k) => {
                state.entries.remove(&k);
                reply.ok();
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EPERM);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(Node::Attribute(k, attr)) = node_of(ino) else {
            return reply.error(Errno::EISDIR);
        };
        if !self.exists(Node::Attribute(k, attr)) {
            return reply.error(Errno::ENOENT);
        }
        let allowed = match flags.acc_mode() {
            OpenAccMode::O_RDONLY => !attr.writable(),
            OpenAccMode::O_WRONLY => attr.writable(),
            _ => false,
        };
        if !allowed {
            return reply.error(Errno::EACCES);
        }
        let mut state = self.state();
        let fh = state.next_handle;
        state.next_handle += 1;
        state.handles.insert(
            fh,
            Handle {
                entry: k,
                attr,
                buf: Vec::new(),
                dirty: false,
            },
        );
        // Direct I/O: reads return exactly what we produce, whatever the size in getattr.
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(Node::Attribute(k, attr)) = node_of(ino) else {
            return reply.error(Errno::EISDIR);
        };
        match self.read_attr(k, attr) {
            Ok(bytes) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = start.saturating_add(size as usize).min(bytes.len());
                reply.data(&bytes[start..end]);
            }
            Err(e) => reply.error(e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (k, attr) = {
            let mut state = self.state();
            let Some(handle) = state.handles.get_mut(&fh.0) else {
                return reply.error(Errno::EBADF);
            };
            if handle.attr == Attr::Inblob {
                // A binary attribute buffers until close; past 64 bytes is EFBIG at write time.
                let Some(end) = usize::try_from(offset)
                    .ok()
                    .and_then(|o| o.checked_add(data.len()))
                    .filter(|end| *end <= INBLOB_MAX)
                else {
                    return reply.error(Errno::EFBIG);
                };
                if handle.buf.len() < end {
                    handle.buf.resize(end, 0);
                }
                handle.buf[end - data.len()..end].copy_from_slice(data);
                handle.dirty = true;
                return reply.written(data.len() as u32);
            }
            (handle.entry, handle.attr)
        };
        // A text attribute is stored on each write.
        match self.store(k, attr, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.commit(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _ = self.commit(fh.0);
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut list: Vec<(Node, FileType, String)> = Vec::new();
        match node_of(ino) {
            Some(Node::Root) => list.push((Node::ReportDir, FileType::Directory, "report".into())),
            Some(Node::ReportDir) => {
                let state = self.state();
                let mut keys: Vec<_> = state.entries.keys().copied().collect();
                keys.sort_unstable();
                for k in keys {
                    if let Some(e) = state.entries.get(&k) {
                        list.push((Node::Entry(k), FileType::Directory, e.name.clone()));
                    }
                }
            }
            Some(Node::Entry(k)) if self.exists(Node::Entry(k)) => {
                for a in Attr::ALL.iter().filter(|a| self.visible(**a)) {
                    list.push((
                        Node::Attribute(k, *a),
                        FileType::RegularFile,
                        a.name().into(),
                    ));
                }
            }
            _ => return reply.error(Errno::ENOTDIR),
        }
        let dots = [
            (ino, FileType::Directory, ".".to_string()),
            (INodeNo(ROOT), FileType::Directory, "..".to_string()),
        ];
        let all = dots
            .into_iter()
            .chain(list.into_iter().map(|(n, t, s)| (ino_of(n), t, s)));
        for (i, (child, kind, name)) in all.enumerate().skip(offset as usize) {
            if reply.add(child, (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}
