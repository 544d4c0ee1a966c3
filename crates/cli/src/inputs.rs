//! What to ingest: the files of a `DIR/<subject>/...` folder, or the rows of a
//! CSV / JSONL manifest, each with its subject or the reason it is skipped.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// One input file and what will happen to it.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    /// The subject; empty only for a file skipped before it has one.
    pub subject: String,
    /// Set when the file is reported as skipped without being sent.
    pub skip: Option<Skip>,
}

/// Why a file is skipped before anything is sent (stable codes, as in the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A file directly in the folder, outside any subject folder.
    NotInSubjectFolder,
    /// Not a JPEG, PNG or WebP file (judged by its first bytes).
    UnsupportedMediaType,
    /// The file could not be read.
    Unreadable,
}

impl Skip {
    pub fn code(self) -> &'static str {
        match self {
            Self::NotInSubjectFolder => "not_in_subject_folder",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unreadable => "unreadable_file",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::NotInSubjectFolder => "the file is not inside a subject folder (DIR/<subject>/...)",
            Self::UnsupportedMediaType => "not a JPEG, PNG or WebP image",
            Self::Unreadable => "the file cannot be read",
        }
    }
}

/// A file that fails before it is sent, reported with the code and message
/// the api gives the same bytes, so a run, a batch and an upload agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: &'static str,
}

/// An empty file is a broken image, not another type: the api answers an
/// empty upload `422 corrupt_image` and fails an empty batch entry so.
pub const EMPTY_FILE: Refusal = Refusal { code: "corrupt_image", message: "the image is empty" };

/// Why a file's bytes are not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSent {
    Skipped(Skip),
    Failed(Refusal),
}

/// A file's bytes as the api would judge them before decoding: the image
/// type to send them as, or why they are not sent.
pub fn check_bytes(bytes: &[u8]) -> Result<&'static str, NotSent> {
    if bytes.is_empty() {
        return Err(NotSent::Failed(EMPTY_FILE));
    }
    image_type(bytes).ok_or(NotSent::Skipped(Skip::UnsupportedMediaType))
}

/// The image type of a file's first bytes, if it is one the api accepts.
pub fn image_type(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Every file under `dir`, sorted by path: files in `dir/<subject>/` (at any
/// depth) belong to that subject; files directly in `dir` are skipped. Hidden
/// files and folders (names starting with `.`) are ignored.
pub fn from_folder(dir: &Path) -> anyhow::Result<Vec<Input>> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let mut inputs = Vec::new();
    for entry in sorted_entries(dir)? {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if entry.is_dir() {
            let mut files = Vec::new();
            walk(&entry, &mut files)?;
            inputs.extend(files.into_iter().map(|path| Input { path, subject: name.clone(), skip: None }));
        } else {
            inputs.push(Input { path: entry, subject: String::new(), skip: Some(Skip::NotInSubjectFolder) });
        }
    }
    Ok(inputs)
}

/// Files under `dir`, at any depth; linked folders are not followed (a link
/// loop would never end), linked files are.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in sorted_entries(dir)? {
        let linked = entry.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink());
        match (entry.is_dir(), linked) {
            (true, false) => walk(&entry, out)?,
            (true, true) => {}
            (false, _) => out.push(entry),
        }
    }
    Ok(())
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        entries.push(entry.path());
    }
    entries.sort();
    Ok(entries)
}

#[derive(Debug, Deserialize)]
struct ManifestRow {
    path: PathBuf,
    subject: String,
}

/// The rows of a manifest: JSONL when the file name ends in `.jsonl` or
/// `.ndjson`, else CSV with a `path,subject` header (a first row without it is data).
pub fn from_manifest(manifest: &Path) -> anyhow::Result<Vec<Input>> {
    let text = std::fs::read_to_string(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let jsonl = matches!(manifest.extension().and_then(|e| e.to_str()), Some("jsonl" | "ndjson"));
    let rows = if jsonl { parse_jsonl(&text)? } else { parse_csv(&text)? };
    Ok(rows.into_iter().map(|r| Input { path: base.join(r.path), subject: r.subject, skip: None }).collect())
}

fn parse_jsonl(text: &str) -> anyhow::Result<Vec<ManifestRow>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str(line).with_context(|| format!("manifest line {}", i + 1))?;
        rows.push(row);
    }
    Ok(rows)
}

fn parse_csv(text: &str) -> anyhow::Result<Vec<ManifestRow>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).trim(csv::Trim::All).from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("manifest row {}", i + 1))?;
        if record.len() != 2 {
            bail!("manifest row {} has {} fields; expected path,subject", i + 1, record.len());
        }
        if i == 0 && &record[0] == "path" && &record[1] == "subject" {
            continue;
        }
        rows.push(ManifestRow { path: PathBuf::from(&record[0]), subject: record[1].to_owned() });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_or_without_header_and_quoted_fields() {
        let rows = parse_csv("path,subject\na/1.jpg,Ann\n\"b,2.jpg\",\"Smith, Bo\"\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].path, PathBuf::from("b,2.jpg"));
        assert_eq!(rows[1].subject, "Smith, Bo");
        assert_eq!(parse_csv("x.jpg,Ann\n").unwrap().len(), 1);
        assert!(parse_csv("x.jpg\n").is_err());
    }

    #[test]
    fn jsonl_rows_and_errors() {
        let rows = parse_jsonl("{\"path\":\"a.jpg\",\"subject\":\"Ann\"}\n\n{\"path\":\"b.jpg\",\"subject\":\"Bo\"}\n");
        assert_eq!(rows.unwrap().len(), 2);
        assert!(parse_jsonl("{\"path\":\"a.jpg\"}").is_err());
    }

    #[test]
    fn image_types_by_content() {
        assert_eq!(image_type(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(image_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_type(b"GIF89a"), None);
        assert_eq!(image_type(b""), None);
    }

    #[test]
    fn an_empty_file_fails_as_a_broken_image_like_on_the_api() {
        assert_eq!(check_bytes(b""), Err(NotSent::Failed(EMPTY_FILE)));
        assert_eq!((EMPTY_FILE.code, EMPTY_FILE.message), ("corrupt_image", "the image is empty"));
        assert_eq!(check_bytes(b"not an image"), Err(NotSent::Skipped(Skip::UnsupportedMediaType)));
        assert_eq!(check_bytes(&[0xFF, 0xD8, 0xFF, 0xE0]), Ok("image/jpeg"));
    }
}
