use std::io::Cursor;

use facerec_core::{DecodeCost, ImageLimits};
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::VisionError;

/// Bounds on what the decoder may allocate, checked from the header before decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// The api's limits (`FACEREC_MAX_PIXELS`, `FACEREC_MAX_PIXELS_PER_BYTE`),
    /// checked again here: an image may reach a worker without passing the api
    /// (batch items, live frames).
    pub image: ImageLimits,
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { image: ImageLimits::default(), max_alloc_bytes: 512 * 1024 * 1024 }
    }
}

/// Decodes JPEG, PNG or WebP bytes into 8-bit RGB, upright (EXIF orientation applied).
/// Grayscale, alpha (dropped), 16-bit and palette images are converted.
pub fn decode_image(bytes: &[u8], limits: DecodeLimits) -> Result<RgbImage, VisionError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| VisionError::Decode(image::ImageError::IoError(e)))?;
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    // Checked from the header like the api does, before a pixel is inflated:
    // a few hundred kilobytes must not buy seconds of decoding and detection.
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    let bytes_per_sample = color.bytes_per_pixel() / color.channel_count().max(1);
    let cost = DecodeCost { width, height, bytes_per_sample, encoded_bytes: bytes.len() as u64 };
    limits.image.check(cost)?;
    // `into_decoder` skips the reservation `ImageReader::decode` makes for the
    // output buffer, so the allocation limit is checked here.
    if decoder.total_bytes() > limits.max_alloc_bytes {
        let kind = image::error::LimitErrorKind::InsufficientMemory;
        return Err(VisionError::OverMemoryLimit(image::ImageError::Limits(image::error::LimitError::from_kind(kind))));
    }
    let orientation = decoder.orientation().map_err(decode_error)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// Tells an image over the decoder's memory limit from a broken one.
fn decode_error(e: image::ImageError) -> VisionError {
    match e {
        image::ImageError::Limits(_) => VisionError::OverMemoryLimit(e),
        e => VisionError::Decode(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facerec_core::ImageTooLarge;
    use image::{ImageFormat, Luma, LumaA, Rgba};

    fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn converts_unusual_pixel_formats_to_rgb() {
        let gray = DynamicImage::ImageLuma8(image::ImageBuffer::from_pixel(4, 3, Luma([200u8])));
        let rgb = decode_image(&encode(gray, ImageFormat::Png), DecodeLimits::default()).unwrap();
        assert_eq!((rgb.width(), rgb.height()), (4, 3));
        assert_eq!(rgb.get_pixel(1, 1).0, [200, 200, 200]);

        let gray16 = DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(2, 2, Luma([65535u16])));
        let rgb = decode_image(&encode(gray16, ImageFormat::Png), DecodeLimits::default()).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);

        let alpha = DynamicImage::ImageRgba8(image::ImageBuffer::from_pixel(2, 2, Rgba([10, 20, 30, 0])));
        let rgb = decode_image(&encode(alpha, ImageFormat::Png), DecodeLimits::default()).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [10, 20, 30]);

        let la = DynamicImage::ImageLumaA8(image::ImageBuffer::from_pixel(2, 2, LumaA([7, 255])));
        assert!(decode_image(&encode(la, ImageFormat::Png), DecodeLimits::default()).is_ok());
    }

    #[test]
    fn refuses_garbage_and_oversized_images_with_bad_input_errors() {
        let err = decode_image(b"definitely not an image", DecodeLimits::default()).unwrap_err();
        assert!(err.is_bad_input(), "{err:?}");

        let png = encode(DynamicImage::new_rgb8(100, 100), ImageFormat::Png);
        let err = decode_image(&png[..png.len() / 2], DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, VisionError::Decode(_)), "{err:?}");

        let image = ImageLimits { max_pixels: 9_999, ..ImageLimits::default() };
        let limits = DecodeLimits { image, ..DecodeLimits::default() };
        let err = decode_image(&png, limits).unwrap_err();
        assert!(
            matches!(err, VisionError::TooLarge(ImageTooLarge::TooManyPixels { width: 100, height: 100, .. })),
            "{err:?}"
        );

        // 100x100 RGB needs 30,000 bytes: over a 10,000-byte allocation limit.
        let limits = DecodeLimits { max_alloc_bytes: 10_000, ..DecodeLimits::default() };
        let err = decode_image(&png, limits).unwrap_err();
        assert!(matches!(err, VisionError::OverMemoryLimit(_)), "{err:?}");
        assert!(err.is_bad_input());
    }

    /// The two cheap images of issue 29 are refused from the header, before
    /// a pixel is decoded, whatever the time or memory decoding them would take.
    #[test]
    fn refuses_images_far_larger_than_their_bytes() {
        let zeros = encode(DynamicImage::new_luma8(6000, 6000), ImageFormat::Png);
        let err = decode_image(&zeros, DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, VisionError::TooLarge(ImageTooLarge::TooCostly(_))), "{err:?}");
        assert!(err.is_bad_input());

        // 40 megapixels of 16-bit samples: not over `max_pixels`, but over the per-byte cost.
        let deep = encode(DynamicImage::new_luma16(8000, 5000), ImageFormat::Png);
        let err = decode_image(&deep, DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(err, VisionError::TooLarge(ImageTooLarge::TooCostly(c)) if c.cost.bytes_per_sample == 2),
            "{err:?}"
        );

        // Up to 4 megapixels any file is decoded; above, the check can be turned off.
        let small = encode(DynamicImage::new_rgb8(2000, 2000), ImageFormat::Png);
        assert!(decode_image(&small, DecodeLimits::default()).is_ok());
        let plain = encode(DynamicImage::new_luma8(3000, 2000), ImageFormat::Png);
        let err = decode_image(&plain, DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, VisionError::TooLarge(ImageTooLarge::TooCostly(_))), "{err:?}");
        let unchecked = ImageLimits { max_pixels_per_byte: 0, ..ImageLimits::default() };
        let unchecked = DecodeLimits { image: unchecked, ..DecodeLimits::default() };
        assert_eq!(decode_image(&plain, unchecked).unwrap().dimensions(), (3000, 2000));
    }
}
