//! How much decoding work one uploaded image may ask for, per byte of it.
//!
//! PNG and WebP compress a plain area almost to nothing: a 105 KB PNG declared
//! 6000x6000 pixels of zeros and cost a worker 5.7 s and 330 MB; a 310 KB
//! 16-bit PNG, 40 megapixels and 3.4 s. Photos do not compress like that: a
//! JPEG photo takes about 1 to 2 bits per pixel at usual qualities, and even a
//! smooth scene at quality 50 well over a third of a bit (under 25 pixels per
//! byte). So above [`FREE_PIXELS`] an image may decode to at most
//! `FACEREC_MAX_PIXELS_PER_BYTE` pixels per byte of the file, 16-bit samples
//! counted twice (they are decoded through a buffer twice the size). The api
//! checks this from the header and the worker again before decoding, so every
//! path (upload, batch, live) refuses the same image with `image_too_large`.

use std::fmt;

/// Images of at most this many pixels are decoded whatever their size in
/// bytes: 4 megapixels (2448x1632, more than messaging apps send) cost a
/// worker a fraction of what the 40-megapixel limit does.
pub const FREE_PIXELS: u64 = 4_000_000;

/// Default of `FACEREC_MAX_PIXELS_PER_BYTE`: 0.16 bits per pixel, twice as
/// dense as the most a smooth JPEG photo reaches, while the cheap images above
/// (343 and 258 pixels per byte) are refused.
pub const DEFAULT_MAX_PIXELS_PER_BYTE: u64 = 50;

/// What decoding an image would take, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeCost {
    pub width: u32,
    pub height: u32,
    /// Bytes per decoded sample: 1 for 8-bit images, 2 for 16-bit ones.
    pub bytes_per_sample: u8,
    /// Size of the file as uploaded.
    pub encoded_bytes: u64,
}

impl DecodeCost {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// Pixels decoded, a 16-bit pixel counting as two.
    pub fn work(&self) -> u64 {
        self.pixels().saturating_mul(u64::from(self.bytes_per_sample.max(1)))
    }

    /// Refuses an image over [`FREE_PIXELS`] of work that asks for more than
    /// `max_pixels_per_byte` per byte of the file; 0 turns the check off.
    pub fn check(self, max_pixels_per_byte: u64) -> Result<(), TooCostly> {
        let work = self.work();
        if max_pixels_per_byte == 0 || work <= FREE_PIXELS {
            return Ok(());
        }
        if work <= self.encoded_bytes.saturating_mul(max_pixels_per_byte) {
            return Ok(());
        }
        Err(TooCostly { cost: self, max_pixels_per_byte })
    }
}

/// An image that would cost far more to decode than its size suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooCostly {
    pub cost: DecodeCost,
    pub max_pixels_per_byte: u64,
}

impl fmt::Display for TooCostly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let DecodeCost { width, height, bytes_per_sample, encoded_bytes } = self.cost;
        let depth = if bytes_per_sample > 1 { " with 16-bit samples" } else { "" };
        write!(
            f,
            "the image is {width}x{height} pixels{depth} in only {encoded_bytes} bytes: above {FREE_PIXELS} pixels \
             an image may have at most {} pixels per byte of file",
            self.max_pixels_per_byte
        )
    }
}

impl std::error::Error for TooCostly {}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(width: u32, height: u32, bytes_per_sample: u8, encoded_bytes: u64) -> DecodeCost {
        DecodeCost { width, height, bytes_per_sample, encoded_bytes }
    }

    #[test]
    fn refuses_the_cheap_images_of_the_report() {
        // 6000x6000 zeros in 105 KB; 40 megapixels of 16-bit samples in 310 KB.
        assert!(cost(6000, 6000, 1, 105_000).check(DEFAULT_MAX_PIXELS_PER_BYTE).is_err());
        assert!(cost(8000, 5000, 2, 310_000).check(DEFAULT_MAX_PIXELS_PER_BYTE).is_err());
    }

    #[test]
    fn accepts_photos_small_images_and_a_disabled_check() {
        // A 12-megapixel JPEG at 0.5 bits per pixel (750 KB), and at the limit exactly.
        assert_eq!(cost(4000, 3000, 1, 750_000).check(DEFAULT_MAX_PIXELS_PER_BYTE), Ok(()));
        assert_eq!(cost(4000, 3000, 1, 12_000_000 / 50).check(50), Ok(()));
        assert!(cost(4000, 3000, 1, 12_000_000 / 50 - 1).check(50).is_err());
        // Up to 4 megapixels anything goes, even a few hundred bytes of PNG.
        assert_eq!(cost(2000, 2000, 1, 300).check(DEFAULT_MAX_PIXELS_PER_BYTE), Ok(()));
        assert_eq!(cost(6000, 6000, 1, 100).check(0), Ok(()));
    }

    #[test]
    fn sixteen_bit_samples_count_twice() {
        // 3 megapixels is free at 8 bits, 6 megapixels of work at 16.
        assert_eq!(cost(2000, 1500, 1, 1_000).check(50), Ok(()));
        let err = cost(2000, 1500, 2, 1_000).check(50).unwrap_err();
        assert!(err.to_string().contains("2000x1500 pixels with 16-bit samples in only 1000 bytes"), "{err}");
    }
}
