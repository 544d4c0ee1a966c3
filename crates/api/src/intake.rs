//! Taking in an archive batch: the upload is streamed to a spool file (never
//! held whole in memory), then read entry by entry on a blocking thread while
//! each entry is recorded as an item, all in one transaction. Any refusal
//! leaves nothing behind: the transaction is dropped and the spool file removed.

use std::collections::HashMap;
use std::path::PathBuf;

use axum::extract::multipart::{Field, MultipartError};
use axum::http::StatusCode;
use facerec_core::SubjectName;
use facerec_store::{BatchWriter, ItemContent, NewBatchItem};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::archive::{self, ArchiveError, Content, Entry, Limits};
use crate::{ApiError, ErrorCode, Settings};

/// Entries read ahead of the database (each at most one upload's size).
const READ_AHEAD: usize = 2;

/// An archive on disk, removed when dropped.
pub struct Spooled {
    pub path: TempPath,
    pub bytes: u64,
}

/// Streams the `archive` field to a new spool file, refusing it past the limit.
pub async fn spool(mut field: Field<'_>, settings: &Settings) -> Result<Spooled, ApiError> {
    let dir = settings.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let named = tempfile::Builder::new().prefix("facerec-batch-").tempfile_in(&dir).map_err(|e| {
        tracing::error!(error = %e, dir = %dir.display(), "cannot create a spool file");
        ApiError::new(ErrorCode::InternalError, "an internal error occurred")
    })?;
    let (file, path) = named.into_parts();
    let mut file = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
    let mut bytes = 0u64;
    let too_large = || archive_too_large(settings);
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, settings))? {
        bytes += chunk.len() as u64;
        if bytes > settings.max_batch_bytes {
            return Err(too_large());
        }
        file.write_all(&chunk).await.map_err(|e| ApiError::internal(&e))?;
    }
    file.flush().await.map_err(|e| ApiError::internal(&e))?;
    Ok(Spooled { path, bytes })
}

/// Longest text field of a batch form (a callback URL, a consent reference).
const MAX_TEXT_FIELD: usize = 8 * 1024;

/// A text field, refused past [`MAX_TEXT_FIELD`] bytes (never buffered whole).
pub async fn small_text(mut field: Field<'_>, settings: &Settings) -> Result<String, ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, settings))? {
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD {
            let message = format!("the form field {name:?} is over {MAX_TEXT_FIELD} bytes");
            return Err(ApiError::new(ErrorCode::InvalidMultipart, message));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::new(ErrorCode::InvalidMultipart, format!("the form field {name:?} is not UTF-8")))
}

fn archive_too_large(settings: &Settings) -> ApiError {
    let message = format!("the archive is larger than {} bytes", settings.max_batch_bytes);
    ApiError::new(ErrorCode::ArchiveTooLarge, message)
}

pub fn multipart_error(e: MultipartError, settings: &Settings) -> ApiError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => archive_too_large(settings),
        _ => ApiError::new(ErrorCode::InvalidMultipart, format!("malformed multipart body: {}", e.body_text())),
    }
}

/// Reads the spooled archive into `writer`, one item per entry. Returns how
/// many items were recorded.
pub async fn read_into(spooled: &Spooled, writer: &mut BatchWriter, settings: &Settings) -> Result<i32, ApiError> {
    let limits = Limits {
        max_entries: settings.max_batch_items,
        max_entry_bytes: settings.max_upload_bytes as u64,
        max_expanded_bytes: settings.max_batch_bytes.saturating_mul(2),
        max_ratio: 20,
    };
    let path: PathBuf = spooled.path.to_path_buf();
    // First pass: the format and the manifest (if any), before any item.
    let first = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let format = archive::detect(&path)?;
            Ok::<_, ArchiveError>((format, archive::manifest(&path, format, limits)?))
        })
    };
    let (format, manifest) = first.await.map_err(|e| ApiError::internal(&e))?.map_err(refused)?;
    // Second pass: entries, read ahead of the database by at most READ_AHEAD.
    let (tx, mut rx) = mpsc::channel::<Entry>(READ_AHEAD);
    let skip_manifest = manifest.is_some();
    let reader = tokio::task::spawn_blocking(move || {
        archive::read(&path, format, limits, &mut |entry| {
            // The manifest itself is not an item.
            (skip_manifest && entry.name == archive::MANIFEST) || tx.blocking_send(entry).is_ok()
        })
    });
    let mut recorded = 0;
    while let Some(entry) = rx.recv().await {
        // On a database error the receiver is dropped, which stops the reader.
        writer.add(item(entry, manifest.as_ref(), settings)).await?;
        recorded += 1;
    }
    reader.await.map_err(|e| ApiError::internal(&e))?.map_err(refused)?;
    Ok(recorded)
}

/// The item an entry becomes, given the archive's manifest (if it has one).
pub fn item(entry: Entry, manifest: Option<&HashMap<String, String>>, settings: &Settings) -> NewBatchItem {
    let subject = match manifest {
        Some(rows) => rows.get(&entry.name).cloned(),
        None => entry.name.split_once('/').map(|(subject, _)| subject.to_owned()),
    };
    let skipped = |code: &'static str, message: String| ItemContent::Skipped { code, message };
    let failed = |code: &'static str, message: String| ItemContent::Failed { code, message };
    let content = match (&subject, entry.content) {
        (None, _) if manifest.is_some() => skipped("not_in_manifest", "the manifest does not list this entry".into()),
        (None, _) => {
            skipped("not_in_subject_folder", "the entry is not inside a subject folder (<subject>/<image>)".into())
        }
        (_, Content::NotRegular) => skipped("not_a_regular_file", "links, devices and FIFOs are not followed".into()),
        (_, Content::Unreadable(why)) => skipped("unsupported_archive_entry", why),
        (_, Content::TooLarge) => {
            failed("payload_too_large", format!("the image is larger than {} bytes", settings.max_upload_bytes))
        }
        (Some(subject), Content::Bytes(bytes)) => match SubjectName::parse(subject) {
            Err(e) => failed("invalid_subject", e.to_string()),
            Ok(_) if archive::looks_like_archive(&bytes) => {
                skipped("nested_archive", "archives inside the archive are not opened".into())
            }
            Ok(_) => match crate::upload::check_image(&bytes, settings) {
                Ok(content_type) => ItemContent::Image { content_type, bytes },
                Err(e) if e.code == ErrorCode::UnsupportedMediaType => skipped("unsupported_media_type", e.message),
                Err(e) => failed(e.code.as_str(), e.message),
            },
        },
    };
    NewBatchItem { path: entry.name, subject: subject.unwrap_or_default(), content }
}

/// The answer for an archive refused as a whole.
fn refused(e: ArchiveError) -> ApiError {
    let code = match &e {
        ArchiveError::Unsupported => ErrorCode::UnsupportedArchive,
        ArchiveError::Corrupt(_) => ErrorCode::CorruptArchive,
        ArchiveError::UnsafePath(_) => ErrorCode::UnsafeArchivePath,
        ArchiveError::TooManyEntries(_) => ErrorCode::ArchiveTooManyEntries,
        ArchiveError::Bomb(_) => ErrorCode::ArchiveBomb,
        ArchiveError::ManifestTooLarge(_) | ArchiveError::ManifestTooManyRows(_) => ErrorCode::ManifestTooLarge,
        ArchiveError::Io(io) => return ApiError::internal(io),
    };
    ApiError::new(code, e.to_string())
}
