//! Tar archives, plain or gzipped. Every byte of the (decompressed) stream is
//! metered, the data of entries we pass over included, and extended headers
//! (GNU long names, PAX records) are read here with a small cap instead of
//! whole by the tar reader.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use super::{ArchiveError, BombSignal, Content, Entry, Limits, entry_name, read_entry};

/// Longest extended header (long name, PAX record set) read.
const MAX_EXTENDED_HEADER: u64 = 64 * 1024;

/// Counts the bytes read through it; past `limit`, reading fails as a bomb.
struct Metered<R> {
    inner: R,
    read: Rc<Cell<u64>>,
    limit: u64,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.read.get() + n as u64;
        self.read.set(total);
        if total > self.limit { Err(io::Error::other(BombSignal)) } else { Ok(n) }
    }
}

pub(super) fn read(
    stream: impl Read,
    most: u64,
    limits: &Limits,
    only: Option<&str>,
    emit: &mut dyn FnMut(Entry) -> bool,
) -> Result<(), ArchiveError> {
    let metered = Metered { inner: stream, read: Rc::new(Cell::new(0)), limit: most };
    let mut tar = tar::Archive::new(metered);
    let (mut count, mut long_name, mut pax_path) = (0usize, None::<Vec<u8>>, None::<Vec<u8>>);
    for entry in tar.entries().map_err(ArchiveError::Io)?.raw(true) {
        let mut entry = entry.map_err(ArchiveError::Io)?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname() {
            let mut name = extended_header(&mut entry)?;
            // The record ends with a NUL (or several).
            while name.last() == Some(&0) {
                name.pop();
            }
            long_name = Some(name);
            continue;
        }
        if kind.is_pax_local_extensions() {
            pax_path = pax_value(&extended_header(&mut entry)?, b"path");
            continue;
        }
        if kind.is_gnu_longlink() || kind.is_pax_global_extensions() {
            extended_header(&mut entry)?;
            continue;
        }
        count += 1;
        if count > limits.max_entries {
            return Err(ArchiveError::TooManyEntries(limits.max_entries));
        }
        let raw = pax_path.take().or(long_name.take()).unwrap_or_else(|| entry.path_bytes().into_owned());
        let raw = String::from_utf8_lossy(&raw).into_owned();
        if kind.is_dir() {
            continue;
        }
        let Some(name) = entry_name(&raw)? else { continue };
        if only.is_some_and(|wanted| wanted != name) {
            continue;
        }
        let content = if kind.is_file() || kind == tar::EntryType::Continuous {
            read_entry(&mut entry, limits.max_entry_bytes, None).map_err(ArchiveError::Io)?
        } else {
            Content::NotRegular
        };
        if !emit(Entry { name, content }) {
            break;
        }
    }
    Ok(())
}

fn extended_header(entry: &mut impl Read) -> Result<Vec<u8>, ArchiveError> {
    let mut bytes = Vec::new();
    entry.take(MAX_EXTENDED_HEADER + 1).read_to_end(&mut bytes).map_err(ArchiveError::Io)?;
    if bytes.len() as u64 > MAX_EXTENDED_HEADER {
        return Err(ArchiveError::Corrupt("an extended header (long name or PAX record) is over 64 KiB".into()));
    }
    Ok(bytes)
}

/// The value of `key` in PAX records (`"<len> <key>=<value>\n"`).
fn pax_value(records: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    let mut rest = records;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        let record = rest.get(space + 1..len)?;
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(key).and_then(|r| r.strip_prefix(b"=")) {
            return Some(value.to_vec());
        }
        rest = &rest[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_are_parsed_by_length() {
        let records = b"20 ctime=1234567890\n22 path=a/very/long/x\n";
        assert_eq!(pax_value(records, b"path").as_deref(), Some(&b"a/very/long/x"[..]));
        assert_eq!(pax_value(records, b"linkpath"), None);
        assert_eq!(pax_value(b"99 path=x\n", b"path"), None, "a length past the end is no record");
    }
}
