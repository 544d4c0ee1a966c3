//! Zip archives. The entry count is read from the end-of-central-directory
//! record first (zip64 included), so a directory claiming millions of entries
//! is refused before any of it is parsed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use zip::result::ZipError;

use super::{ArchiveError, Budget, Content, Entry, entry_name, read_entry};

pub(super) fn read(
    mut file: File,
    budget: &mut Budget,
    only: Option<&str>,
    emit: &mut dyn FnMut(Entry) -> bool,
) -> Result<(), ArchiveError> {
    if let Some(count) = declared_entries(&mut file).map_err(ArchiveError::Io)?
        && count > budget.limits.max_entries as u64
    {
        return Err(ArchiveError::TooManyEntries(budget.limits.max_entries));
    }
    file.rewind().map_err(ArchiveError::Io)?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    if zip.len() > budget.limits.max_entries {
        return Err(ArchiveError::TooManyEntries(budget.limits.max_entries));
    }
    let indices: Vec<usize> = match only {
        Some(name) => zip.index_for_name(name).into_iter().collect(),
        None => (0..zip.len()).collect(),
    };
    for i in indices {
        let raw = match zip.name_for_index(i) {
            Some(Ok(name)) => name.into_owned(),
            Some(Err(e)) => return Err(ArchiveError::Corrupt(e.to_string())),
            None => continue,
        };
        let Some(name) = entry_name(&raw)? else { continue };
        let content = match zip.by_index(i) {
            Ok(entry) if entry.is_dir() => continue,
            Ok(entry) if entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000) => Content::NotRegular,
            Ok(mut entry) => {
                let max = budget.limits.max_entry_bytes;
                read_entry(&mut entry, max, Some(&mut *budget)).map_err(ArchiveError::Io)?
            }
            Err(e @ (ZipError::UnsupportedArchive(_) | ZipError::CompressionMethodNotSupported(_))) => {
                Content::Unreadable(e.to_string())
            }
            Err(e) => return Err(ArchiveError::Corrupt(e.to_string())),
        };
        if !emit(Entry { name, content }) {
            break;
        }
    }
    Ok(())
}

/// The entry count of the end-of-central-directory record (or of its zip64
/// record); `None` when there is none to read (the zip reader then decides).
fn declared_entries(file: &mut File) -> io::Result<Option<u64>> {
    const EOCD: &[u8] = b"PK\x05\x06";
    let len = file.metadata()?.len();
    let tail_len = len.min(65_535 + 22);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact(&mut tail)?;
    let Some(at) = tail.windows(4).rposition(|w| w == EOCD) else { return Ok(None) };
    let Some(record) = tail.get(at..at + 22) else { return Ok(None) };
    let total = u64::from(u16::from_le_bytes([record[10], record[11]]));
    if total != 0xFFFF {
        return Ok(Some(total));
    }
    // Zip64: a 20-byte locator just before the record points to the zip64 record.
    let Some(locator) = at.checked_sub(20).map(|l| &tail[l..at]) else { return Ok(Some(total)) };
    if &locator[..4] != b"PK\x06\x07" {
        return Ok(Some(total));
    }
    let offset = u64::from_le_bytes(locator[8..16].try_into().expect("8 bytes"));
    let mut zip64 = [0u8; 56];
    if offset + 56 > len {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut zip64)?;
    if &zip64[..4] != b"PK\x06\x06" {
        return Ok(None);
    }
    Ok(Some(u64::from_le_bytes(zip64[32..40].try_into().expect("8 bytes"))))
}
