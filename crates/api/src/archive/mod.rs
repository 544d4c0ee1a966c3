//! Reading an uploaded archive (zip, tar or tar.gz) from its spool file, one
//! entry at a time, with the checks a hostile archive needs: a cap on entries,
//! on each entry's bytes and on all bytes expanded, a ratio that catches
//! compression bombs, and names that are refused when absolute or climbing
//! (`..`). Nothing is ever written to disk from an archive: entries become
//! bytes in memory, one at a time, and then rows (written in chunks:
//! `facerec_store::BatchWriter`).
//!
//! Synchronous (runs on a blocking thread).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

mod tarball;
mod zipfile;

/// The archive formats accepted, told apart by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Zip,
    Tar,
    TarGz,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    /// Larger entries become `TooLarge` (not read past this).
    pub max_entry_bytes: u64,
    /// All entries together, expanded.
    pub max_expanded_bytes: u64,
    /// Expanded bytes may exceed this many times the archive's size (beyond a first 64 MiB).
    pub max_ratio: u64,
}

/// Why a whole archive is refused (nothing of it is kept).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the file is not a zip, tar or tar.gz archive")]
    Unsupported,
    #[error("the archive is corrupt: {0}")]
    Corrupt(String),
    #[error("the archive has an entry named {0:?}: absolute names and `..` are refused")]
    UnsafePath(String),
    #[error("the archive has more than {0} entries")]
    TooManyEntries(usize),
    #[error("the archive expands to more than {0} bytes (a compression bomb?)")]
    Bomb(u64),
    #[error("the archive's manifest.csv is larger than {0} bytes")]
    ManifestTooLarge(u64),
    #[error("the archive's manifest.csv has more than {0} rows (one per entry at most)")]
    ManifestTooManyRows(usize),
    #[error("reading the spooled archive failed")]
    Io(#[source] io::Error),
}

/// One entry of the archive (directories and hidden files are not entries).
#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub content: Content,
}

#[derive(Debug)]
pub enum Content {
    Bytes(Vec<u8>),
    /// Over the per-entry limit; its size as far as it was read.
    TooLarge,
    /// A symlink, hard link, device or FIFO: never followed.
    NotRegular,
    /// Encrypted, or compressed with a method we do not read.
    Unreadable(String),
}

/// Bytes at which the ratio check starts (small archives may compress well).
const RATIO_GRACE: u64 = 64 * 1024 * 1024;
/// `manifest.csv` is read into memory, so it may not be larger than this
/// (8 MiB holds well over 100,000 rows of `path,subject`).
pub const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024;
pub const MANIFEST: &str = "manifest.csv";

pub fn detect(path: &Path) -> Result<Format, ArchiveError> {
    let mut head = [0u8; 512];
    let mut file = File::open(path).map_err(ArchiveError::Io)?;
    let n = read_up_to(&mut file, &mut head).map_err(ArchiveError::Io)?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Ok(Format::Zip)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Format::TarGz)
    } else if n >= 262 && &head[257..262] == b"ustar" {
        Ok(Format::Tar)
    } else {
        Err(ArchiveError::Unsupported)
    }
}

/// True when the bytes begin like an archive or compressed stream (an archive inside an archive).
pub fn looks_like_archive(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
        || bytes.starts_with(&[0x1f, 0x8b])
        || bytes.starts_with(b"BZh")
        || bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || bytes.starts_with(&[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c])
        || bytes.starts_with(b"Rar!")
        || (bytes.len() >= 262 && &bytes[257..262] == b"ustar")
}

/// Checks an entry's name; `None` for entries that are not items (directories,
/// hidden files, macOS resource forks).
pub(crate) fn entry_name(raw: &str) -> Result<Option<String>, ArchiveError> {
    let name = raw.replace('\\', "/");
    let drive = name.len() >= 2 && name.as_bytes()[1] == b':' && name.as_bytes()[0].is_ascii_alphabetic();
    if name.starts_with('/') || drive || name.contains('\0') || name.split('/').any(|c| c == "..") {
        return Err(ArchiveError::UnsafePath(raw.to_owned()));
    }
    let name = name.trim_start_matches("./").to_owned();
    let hidden = name.split('/').any(|c| c.starts_with('.') || c == "__MACOSX");
    if name.is_empty() || name.ends_with('/') || hidden {
        return Ok(None);
    }
    Ok(Some(name))
}

/// Counts expanded bytes against the limits.
pub(crate) struct Budget {
    limits: Limits,
    archive_bytes: u64,
    expanded: u64,
}

impl Budget {
    pub(crate) fn add(&mut self, n: u64) -> Result<(), ArchiveError> {
        self.expanded += n;
        let by_ratio = RATIO_GRACE.max(self.archive_bytes.saturating_mul(self.limits.max_ratio));
        let most = by_ratio.min(self.limits.max_expanded_bytes);
        if self.expanded > most { Err(ArchiveError::Bomb(most)) } else { Ok(()) }
    }
}

/// Reads at most `max + 1` bytes: `TooLarge` when there were more than `max`.
/// `budget` is charged unless the stream is metered already (tar).
fn read_entry(reader: &mut impl Read, max: u64, budget: Option<&mut Budget>) -> Result<Content, io::Error> {
    let mut bytes = Vec::new();
    reader.take(max + 1).read_to_end(&mut bytes)?;
    if let Some(budget) = budget
        && budget.add(bytes.len() as u64).is_err()
    {
        return Err(io::Error::other(BombSignal));
    }
    Ok(if bytes.len() as u64 > max { Content::TooLarge } else { Content::Bytes(bytes) })
}

#[derive(Debug)]
struct BombSignal;
impl std::fmt::Display for BombSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("expansion limit reached")
    }
}
impl std::error::Error for BombSignal {}

/// The archive's `manifest.csv` (`path,subject`), if it has one at its root.
/// Only that entry is read (at most [`MAX_MANIFEST_BYTES`]); the others are
/// passed over. It may have at most one row per entry the archive may have.
pub fn manifest(path: &Path, format: Format, limits: Limits) -> Result<Option<HashMap<String, String>>, ArchiveError> {
    let mut found = None;
    let max_rows = limits.max_entries;
    let limits = Limits { max_entry_bytes: MAX_MANIFEST_BYTES, ..limits };
    read_filtered(path, format, limits, Some(MANIFEST), &mut |entry| {
        found = Some(entry.content);
        false
    })?;
    match found {
        None => Ok(None),
        Some(Content::Bytes(bytes)) => parse_manifest(&bytes, max_rows).map(Some),
        Some(Content::TooLarge) => Err(ArchiveError::ManifestTooLarge(MAX_MANIFEST_BYTES)),
        Some(Content::NotRegular | Content::Unreadable(_)) => {
            Err(ArchiveError::Corrupt(format!("{MANIFEST} is not a readable file")))
        }
    }
}

/// Parses the manifest row by row (as CSV: quoted fields, an optional
/// `path,subject` header), refusing it past `max_rows` rows.
fn parse_manifest(bytes: &[u8], max_rows: usize) -> Result<HashMap<String, String>, ArchiveError> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(bytes);
    let mut rows = HashMap::new();
    let mut record = csv::StringRecord::new();
    let (mut first, mut count) = (true, 0usize);
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                let why = if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) { "is not UTF-8" } else { "is not CSV" };
                return Err(ArchiveError::Corrupt(format!("{MANIFEST} line {line} {why}")));
            }
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        let line = record.position().map_or(0, |p| p.line());
        let (Some(path), Some(subject), 2) = (record.get(0), record.get(1), record.len()) else {
            return Err(ArchiveError::Corrupt(format!("{MANIFEST} line {line} is not path,subject")));
        };
        if std::mem::take(&mut first) && path == "path" && subject == "subject" {
            continue;
        }
        count += 1;
        if count > max_rows {
            return Err(ArchiveError::ManifestTooManyRows(max_rows));
        }
        rows.insert(path.trim_start_matches("./").to_owned(), subject.to_owned());
    }
    Ok(rows)
}

/// Calls `emit` with every entry in archive order until it returns `false`.
pub fn read(
    path: &Path,
    format: Format,
    limits: Limits,
    emit: &mut dyn FnMut(Entry) -> bool,
) -> Result<(), ArchiveError> {
    read_filtered(path, format, limits, None, emit)
}

/// As [`read`]; with `only`, just the entry of that name is read and emitted.
fn read_filtered(
    path: &Path,
    format: Format,
    limits: Limits,
    only: Option<&str>,
    emit: &mut dyn FnMut(Entry) -> bool,
) -> Result<(), ArchiveError> {
    let file = File::open(path).map_err(ArchiveError::Io)?;
    let archive_bytes = file.metadata().map_err(ArchiveError::Io)?.len();
    let mut budget = Budget { limits, archive_bytes, expanded: 0 };
    let most = budget_most(&budget);
    let result = match format {
        Format::Zip => zipfile::read(file, &mut budget, only, emit),
        Format::Tar => tarball::read(BufReader::new(file), most, &limits, only, emit),
        Format::TarGz => {
            tarball::read(flate2::read::MultiGzDecoder::new(BufReader::new(file)), most, &limits, only, emit)
        }
    };
    result.map_err(|e| match e {
        ArchiveError::Io(io) if is_bomb(&io) => ArchiveError::Bomb(most),
        ArchiveError::Io(io) => ArchiveError::Corrupt(io.to_string()),
        other => other,
    })
}

fn budget_most(b: &Budget) -> u64 {
    RATIO_GRACE.max(b.archive_bytes.saturating_mul(b.limits.max_ratio)).min(b.limits.max_expanded_bytes)
}

fn is_bomb(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<BombSignal>())
}

fn read_up_to(file: &mut (impl Read + Seek), buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_climb_or_are_absolute_are_refused() {
        for bad in ["../x.jpg", "a/../../x.jpg", "/etc/passwd", "C:\\x.jpg", "a\\..\\..\\x.jpg"] {
            assert!(matches!(entry_name(bad), Err(ArchiveError::UnsafePath(_))), "{bad}");
        }
        assert_eq!(entry_name("./ann/1.jpg").unwrap().as_deref(), Some("ann/1.jpg"));
        assert_eq!(entry_name("ann/").unwrap(), None);
        assert_eq!(entry_name("__MACOSX/ann/._1.jpg").unwrap(), None);
        assert_eq!(entry_name("ann/.DS_Store").unwrap(), None);
        assert_eq!(entry_name("a..b/c..jpg").unwrap().as_deref(), Some("a..b/c..jpg"));
    }

    #[test]
    fn manifest_rows_with_or_without_header() {
        let rows = parse_manifest(b"path, subject\nann/1.jpg,Ann\n./bo.jpg,\"Smith, Bo\"\n\n", 10).unwrap();
        assert_eq!(rows["ann/1.jpg"], "Ann");
        assert_eq!(rows["bo.jpg"], "Smith, Bo");
        assert_eq!(parse_manifest(b"x.jpg,Ann\n", 10).unwrap()["x.jpg"], "Ann");
        assert!(matches!(parse_manifest(b"no comma here\n", 10), Err(ArchiveError::Corrupt(_))));
        assert!(matches!(parse_manifest(b"a,b,c\n", 10), Err(ArchiveError::Corrupt(_))));
        assert!(matches!(parse_manifest(b"a.jpg,\xff\n", 10), Err(ArchiveError::Corrupt(_))));
    }

    #[test]
    fn a_manifest_has_at_most_one_row_per_entry_allowed() {
        let rows: String = (0..3).map(|i| format!("{i}.jpg,Ann\n")).collect();
        assert_eq!(parse_manifest(format!("path,subject\n{rows}").as_bytes(), 3).unwrap().len(), 3);
        assert!(matches!(parse_manifest(rows.as_bytes(), 2), Err(ArchiveError::ManifestTooManyRows(2))));
    }

    #[test]
    fn the_budget_catches_ratio_and_total() {
        let limits = Limits { max_entries: 10, max_entry_bytes: 10, max_expanded_bytes: u64::MAX, max_ratio: 10 };
        let mut b = Budget { limits, archive_bytes: 1024 * 1024 * 1024, expanded: 0 };
        assert!(b.add(1024).is_ok());
        let mut small = Budget { limits, archive_bytes: 1000, expanded: 0 };
        assert!(small.add(RATIO_GRACE).is_ok());
        assert!(small.add(1).is_err(), "past the grace, 10x of 1000 bytes is long exceeded");
    }
}
