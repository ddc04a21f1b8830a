//! The `checkpoint` file (log start offset and recovery point), the clean-shutdown
//! marker and directory fsync.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Name of the checkpoint file inside a partition directory.
pub const CHECKPOINT_NAME: &str = "checkpoint";
/// Temporary name the checkpoint is written under before the rename.
pub const CHECKPOINT_TMP_NAME: &str = "checkpoint.tmp";
/// Empty file present only between a clean close and the next open.
pub const CLEAN_SHUTDOWN_NAME: &str = ".clean_shutdown";

/// Contents of a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub log_start_offset: i64,
    pub recovery_point: i64,
}

/// fsync a directory so that creations, renames and unlinks in it are durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The checkpoint text: exactly three `key value` lines.
pub fn render(c: &Checkpoint) -> String {
    format!(
        "version 1\nlog_start_offset {}\nrecovery_point {}\n",
        c.log_start_offset, c.recovery_point
    )
}

/// Parses checkpoint text; Err names what is wrong.
pub fn parse(text: &str) -> Result<Checkpoint, String> {
    let (mut version, mut start, mut rp) = (None, None, None);
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "version" => version = Some(value),
            "log_start_offset" => start = Some(value),
            "recovery_point" => rp = Some(value),
            _ => {}
        }
    }
    if version != Some("1") {
        return Err(format!("unknown version {version:?}"));
    }
    let num = |name: &str, v: Option<&str>| -> Result<i64, String> {
        v.ok_or_else(|| format!("missing {name}"))?
            .trim()
            .parse::<i64>()
            .map_err(|e| format!("bad {name}: {e}"))
    };
    Ok(Checkpoint {
        log_start_offset: num("log_start_offset", start)?,
        recovery_point: num("recovery_point", rp)?,
    })
}

/// Reads `dir/checkpoint`: Ok(None) when absent, Err(message) when unreadable.
pub fn read(dir: &Path) -> Result<Option<Checkpoint>, String> {
    let path = dir.join(CHECKPOINT_NAME);
    match fs::read_to_string(&path) {
        Ok(text) => parse(&text).map(Some).map_err(|e| {
            format!(
                "{}: unreadable checkpoint ({e}); expected 'version 1' lines",
                path.display()
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Atomically replaces `dir/checkpoint`: write the temp file, fsync, rename, fsync dir.
pub fn write(dir: &Path, c: &Checkpoint) -> io::Result<()> {
    let tmp = dir.join(CHECKPOINT_TMP_NAME);
    let mut f = File::create(&tmp)?;
    f.write_all(render(c).as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(CHECKPOINT_NAME))?;
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_text_is_three_exact_lines_and_parses_back() {
        let c = Checkpoint {
            log_start_offset: 7,
            recovery_point: 1234,
        };
        assert_eq!(
            render(&c),
            "version 1\nlog_start_offset 7\nrecovery_point 1234\n"
        );
        assert_eq!(parse(&render(&c)), Ok(c));
    }

    #[test]
    fn checkpoint_with_unknown_version_is_rejected() {
        assert!(parse("version 2\nlog_start_offset 0\nrecovery_point 0\n").is_err());
        assert!(parse("version 1\nlog_start_offset x\nrecovery_point 0\n").is_err());
    }
}
