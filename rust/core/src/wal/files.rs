//! A bounded cache of open segment files, shared by every log of a [`super::WriterPool`].
//!
//! Logs keep paths, not descriptors: a segment file is opened when it is read, written
//! or fsynced and stays open while it is among the `capacity` most recently used, so
//! a broker with thousands of idle partitions holds a bounded number of descriptors.
//! An evicted file is closed as soon as no reader or writer still holds its `Arc`.
//!
//! Closing a file with unsynced data loses nothing: the page cache belongs to the
//! inode, and the writer's next fsync round reopens the file and fsyncs it. Linux
//! (since 4.13) also reports a writeback error that nobody has seen yet to a
//! descriptor opened after it, so a failure while the file was closed still fails
//! that fsync and takes the log offline.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::lock;

/// How a caller uses a file; decides how a missing one is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `pread` (readers, header walks).
    Read,
    /// `pread` and positioned writes: the active segment's `.log`.
    Write,
    /// Appends: the active segment's `.index` and `.timeindex`.
    Append,
    /// Only `fsync`: any open handle will do.
    Sync,
}

impl Access {
    /// True when a handle opened for `self` serves `want`.
    fn serves(self, want: Access) -> bool {
        match want {
            Access::Sync => true,
            Access::Read => matches!(self, Access::Read | Access::Write),
            Access::Write => self == Access::Write,
            Access::Append => self == Access::Append,
        }
    }

    fn open(self, path: &Path) -> io::Result<File> {
        let mut o = OpenOptions::new();
        match self {
            Access::Read | Access::Sync => o.read(true),
            Access::Write => o.read(true).write(true),
            Access::Append => o.append(true),
        };
        o.open(path)
    }
}

struct Entry {
    file: Arc<File>,
    access: Access,
    tick: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<PathBuf, Entry>,
    /// tick of last use -> path: the least recently used entry comes first.
    order: BTreeMap<u64, PathBuf>,
    tick: u64,
}

/// Counters of a [`FileCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCacheStats {
    /// Files held open by the cache now.
    pub open: u64,
    /// The most it holds.
    pub capacity: u64,
    /// Files opened since the start (misses).
    pub opened: u64,
    /// Files closed to make room.
    pub evicted: u64,
}

/// A least-recently-used set of open files, keyed by path (see the module docs).
pub struct FileCache {
    capacity: usize,
    inner: Mutex<Inner>,
    opened: AtomicU64,
    evicted: AtomicU64,
}

impl FileCache {
    /// A cache holding at most `capacity` (>= 1) files open.
    pub fn new(capacity: usize) -> FileCache {
        FileCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            opened: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// The open file at `path`, opening it for `access` when no cached handle serves it.
    pub fn get(&self, path: &Path, access: Access) -> io::Result<Arc<File>> {
        {
            let mut g = lock(&self.inner);
            let g = &mut *g;
            if let Some(e) = g.map.get_mut(path) {
                if e.access.serves(access) {
                    g.tick += 1;
                    g.order.remove(&e.tick);
                    e.tick = g.tick;
                    g.order.insert(e.tick, path.to_path_buf());
                    return Ok(e.file.clone());
                }
            }
        }
        // Opened outside the lock: other logs' lookups do not wait for this syscall.
        let file = Arc::new(access.open(path)?);
        self.opened.fetch_add(1, Ordering::Relaxed);
        let mut g = lock(&self.inner);
        let g = &mut *g;
        g.tick += 1;
        let tick = g.tick;
        if let Some(old) = g.map.insert(
            path.to_path_buf(),
            Entry {
                file: file.clone(),
                access,
                tick,
            },
        ) {
            g.order.remove(&old.tick);
        }
        g.order.insert(tick, path.to_path_buf());
        while g.map.len() > self.capacity {
            let Some((_, victim)) = g.order.pop_first() else {
                break;
            };
            g.map.remove(&victim);
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(file)
    }

    /// Drops the cached handle of `path` (its file was deleted, truncated or replaced).
    pub fn forget(&self, path: &Path) {
        let mut g = lock(&self.inner);
        if let Some(e) = g.map.remove(path) {
            g.order.remove(&e.tick);
        }
    }

    /// Drops every cached handle of a file directly inside `dir` (a log closing).
    pub fn forget_dir(&self, dir: &Path) {
        let mut g = lock(&self.inner);
        let doomed: Vec<PathBuf> = g
            .map
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect();
        for p in doomed {
            if let Some(e) = g.map.remove(&p) {
                g.order.remove(&e.tick);
            }
        }
    }

    /// Counters (see [`FileCacheStats`]).
    pub fn stats(&self) -> FileCacheStats {
        FileCacheStats {
            open: lock(&self.inner).map.len() as u64,
            capacity: self.capacity as u64,
            opened: self.opened.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("streamcore-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn the_least_recently_used_file_is_closed_first() {
        let d = dir("lru");
        let paths: Vec<PathBuf> = (0..3).map(|i| d.join(format!("{i}.log"))).collect();
        for p in &paths {
            std::fs::write(p, b"x").unwrap();
        }
        let cache = FileCache::new(2);
        cache.get(&paths[0], Access::Read).unwrap();
        cache.get(&paths[1], Access::Read).unwrap();
        // Touch 0 so that 1 is the oldest when 2 comes in.
        cache.get(&paths[0], Access::Read).unwrap();
        cache.get(&paths[2], Access::Read).unwrap();
        let s = cache.stats();
        assert_eq!((s.open, s.opened, s.evicted), (2, 3, 1));
        cache.get(&paths[0], Access::Read).unwrap();
        assert_eq!(cache.stats().opened, 3, "0 must still be cached");
        cache.get(&paths[1], Access::Read).unwrap();
        assert_eq!(cache.stats().opened, 4, "1 must have been evicted");
        cache.forget_dir(&d);
        assert_eq!(cache.stats().open, 0);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_read_handle_is_reopened_for_writing() {
        let d = dir("modes");
        let p = d.join("0.log");
        std::fs::write(&p, b"").unwrap();
        let cache = FileCache::new(4);
        cache.get(&p, Access::Read).unwrap();
        let w = cache.get(&p, Access::Write).unwrap();
        use std::os::unix::fs::FileExt;
        w.write_all_at(b"abc", 0).unwrap();
        // The write handle now serves readers and fsync too.
        cache.get(&p, Access::Read).unwrap();
        cache.get(&p, Access::Sync).unwrap().sync_data().unwrap();
        assert_eq!(cache.stats().opened, 2);
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        let _ = std::fs::remove_dir_all(&d);
    }
}
