//! Reading a multipart upload: one `image` file plus text fields, checked
//! before anything is stored (size, type from the content, header dimensions).

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
/// `image2` file, and text fields. Unknown fields are ignored.
#[derive(Debug)]
pub struct Form {
    pub image: ImageUpload,
    pub image2: Option<ImageUpload>,
    fields: HashMap<String, String>,
}

impl Form {
    pub async fn read(multipart: Result<Multipart, MultipartRejection>, settings: &Settings) -> Result<Self, ApiError> {
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
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| ApiError::new(ErrorCode::CorruptImage, format!("the image header cannot be read: {e}")))?;
    if width == 0 || height == 0 {
        return Err(ApiError::new(
            ErrorCode::CorruptImage,
            format!("the image header declares {width}x{height} pixels"),
        ));
    }
    if u64::from(width) * u64::from(height) > settings.max_pixels {
        return Err(ApiError::new(
            ErrorCode::ImageTooLarge,
            format!("the image is {width}x{height} pixels, over the limit of {} pixels", settings.max_pixels),
        ));
    }
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
}
