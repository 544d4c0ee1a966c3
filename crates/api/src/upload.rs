//! Reading a multipart upload: one `image` file plus the text fields the route
//! takes, checked before anything is stored (field names, size, type from the
//! content, header dimensions).

use std::collections::HashMap;
use std::io::Cursor;

use axum::body::Bytes;
use axum::extract::Multipart;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::http::StatusCode;
use image::{ImageFormat, ImageReader};

use crate::{ApiError, ErrorCode, Settings};

/// A checked image upload.
#[derive(Debug)]
pub struct ImageUpload {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

/// The fields of a submission form: the `image` file, for verify an optional
/// `image2` file, and text fields. A field the route does not take is refused
/// (a misspelt `treshold` must not run with the default threshold).
#[derive(Debug)]
pub struct Form {
    pub image: ImageUpload,
    pub image2: Option<ImageUpload>,
    fields: HashMap<String, String>,
}

impl Form {
    /// Reads the form of a route that takes the fields `allowed` (files included).
    pub async fn read(
        multipart: Result<Multipart, MultipartRejection>,
        settings: &Settings,
        allowed: &[&str],
    ) -> Result<Self, ApiError> {
        let mut multipart = multipart.map_err(|e| {
            ApiError::new(ErrorCode::InvalidMultipart, format!("expected a multipart/form-data body: {e}"))
        })?;
        let too_large = |e: MultipartError| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(settings.max_upload_bytes),
            _ => ApiError::new(ErrorCode::InvalidMultipart, format!("malformed multipart body: {}", e.body_text())),
        };
        let (mut image, mut image2) = (None, None);
        let mut fields = HashMap::new();
        while let Some(field) = multipart.next_field().await.map_err(too_large)? {
            let name = field.name().unwrap_or_default().to_owned();
            // Refused by its name, before its content is read.
            known_field(&name, allowed)?;
            let file = match name.as_str() {
                "image" => Some(&mut image),
                "image2" => Some(&mut image2),
                _ => None,
            };
            if let Some(slot) = file {
                if slot.is_some() {
                    return Err(ApiError::new(ErrorCode::DuplicateField, format!("the form has more than one {name}")));
                }
                *slot = Some(field.bytes().await.map_err(too_large)?);
            } else {
                let value = field.text().await.map_err(too_large)?;
                if fields.insert(name.clone(), value).is_some() {
                    return Err(ApiError::new(ErrorCode::DuplicateField, format!("the form has field {name:?} twice")));
                }
            }
        }
        let bytes = image.ok_or_else(|| ApiError::new(ErrorCode::MissingImage, "the form has no image field"))?;
        let image = ImageUpload { content_type: check_image(&bytes, settings)?, bytes };
        let image2 =
            image2.map(|bytes| Ok::<_, ApiError>(ImageUpload { content_type: check_image(&bytes, settings)?, bytes }));
        Ok(Self { image, image2: image2.transpose()?, fields })
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// `400 unknown_field` unless the route takes a field named `name`; the
/// answer names the field and every field the route takes.
pub fn known_field(name: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&name) {
        Ok(())
    } else {
        Err(ApiError::unknown_field("form has an unknown field", name, allowed))
    }
}

/// What a client is told about an image whose header cannot be read.
pub const UNREADABLE_HEADER: &str = "the image is damaged or cut short: its header cannot be read";

/// Checks the image's size, type (from its bytes, not the client's claim) and
/// header dimensions, without decoding pixels. Returns its MIME type.
pub fn check_image(bytes: &[u8], settings: &Settings) -> Result<&'static str, ApiError> {
    if bytes.len() > settings.max_upload_bytes {
        return Err(ApiError::payload_too_large(settings.max_upload_bytes));
    }
    if bytes.is_empty() {
        return Err(ApiError::new(ErrorCode::CorruptImage, "the image is empty"));
    }
    let format = image::guess_format(bytes).map_err(|_| ApiError::unsupported_media_type())?;
    let content_type = match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Png => "image/png",
        ImageFormat::WebP => "image/webp",
        _ => return Err(ApiError::unsupported_media_type()),
    };
    let decoder = ImageReader::with_format(Cursor::new(bytes), format).into_decoder().map_err(|e| {
        // The decoder's words are for us, not the client (they name its internals).
        tracing::warn!(error = %e, format = content_type, "image header unreadable");
        ApiError::new(ErrorCode::CorruptImage, UNREADABLE_HEADER)
    })?;
    let (width, height) = image::ImageDecoder::dimensions(&decoder);
    if width == 0 || height == 0 {
        return Err(ApiError::new(
            ErrorCode::CorruptImage,
            format!("the image header declares {width}x{height} pixels"),
        ));
    }
    // The worker applies the same rule before decoding (facerec_core::ImageLimits).
    let color = image::ImageDecoder::color_type(&decoder);
    let bytes_per_sample = color.bytes_per_pixel() / color.channel_count().max(1);
    let cost = facerec_core::DecodeCost { width, height, bytes_per_sample, encoded_bytes: bytes.len() as u64 };
    settings.image_limits.check(cost).map_err(|e| ApiError::new(ErrorCode::ImageTooLarge, e.to_string()))?;
    Ok(content_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings() -> Settings {
        Settings::parse_from(["facerec-api", "--max-upload-bytes", "100000", "--max-pixels", "10000"])
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::new_rgb8(w, h).write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn accepts_a_small_png_by_its_content() {
        assert_eq!(check_image(&png(10, 10), &settings()), Ok("image/png"));
    }

    #[test]
    fn refuses_with_the_right_codes() {
        let s = settings();
        let code = |bytes: &[u8]| check_image(bytes, &s).unwrap_err().code.as_str();
        assert_eq!(code(b""), "corrupt_image");
        assert_eq!(code(b"GIF89a........"), "unsupported_media_type");
        assert_eq!(code(b"hello world"), "unsupported_media_type");
        assert_eq!(code(&png(101, 100)), "image_too_large");
        assert_eq!(code(&vec![0u8; 100_001]), "payload_too_large");
        let mut truncated = png(10, 10);
        truncated.truncate(12);
        assert_eq!(code(&truncated), "corrupt_image");
    }

    #[test]
    fn a_broken_header_is_told_in_plain_words_not_the_decoders() {
        let s = settings();
        let mut truncated = png(10, 10);
        truncated.truncate(20);
        // A JPEG whose APP0 segment declares a length of 0 ("Found a marker with invalid length:0").
        let bad_marker = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
        for bytes in [&truncated[..], &bad_marker[..]] {
            let error = check_image(bytes, &s).unwrap_err();
            assert_eq!((error.code.as_str(), error.message.as_str()), ("corrupt_image", UNREADABLE_HEADER));
        }
    }

    #[test]
    fn unknown_fields_are_named_with_the_ones_the_route_takes() {
        let allowed = ["image", "collection", "threshold", "top_k"];
        assert!(known_field("threshold", &allowed).is_ok());
        let error = known_field("treshold", &allowed).unwrap_err();
        assert_eq!(error.code.as_str(), "unknown_field");
        assert_eq!(
            error.message,
            "the form has an unknown field \"treshold\"; this route takes image, collection, threshold, top_k"
        );
        assert_eq!(known_field("", &allowed).unwrap_err().code.as_str(), "unknown_field");
    }
}
