//! The limits an uploaded image must be within before a pixel of it is
//! decoded: `FACEREC_MAX_PIXELS` and `FACEREC_MAX_PIXELS_PER_BYTE`, declared
//! here once with their rule. The api checks them from the header and the
//! worker again before decoding, so every path (upload, batch, live) refuses
//! the same image with `image_too_large`; both binaries flatten
//! [`ImageLimits`] into their settings.
//!
//! Clap's `Args` is derived only with this crate's `clap` feature, which the
//! two binaries' crates turn on: the other users of core do not build clap.

use crate::decode_cost::{DEFAULT_MAX_PIXELS_PER_BYTE, DecodeCost, TooCostly};

/// Default of `FACEREC_MAX_PIXELS`: 40 megapixels, above any phone camera's
/// photo, and what one decode may cost a worker at most.
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// How large an image may be, read from its header before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ImageLimits {
    /// Images with more pixels (read from the header) are refused before
    /// decoding (`image_too_large`).
    #[cfg_attr(feature = "clap", arg(long, env = "FACEREC_MAX_PIXELS", default_value_t = DEFAULT_MAX_PIXELS))]
    pub max_pixels: u64,
    /// Images over 4 megapixels with more pixels than this per byte of file
    /// (16-bit ones counted twice) are refused before decoding
    /// (`image_too_large`): a small file must not cost a worker seconds. 0: no limit.
    #[cfg_attr(
        feature = "clap",
        arg(long, env = "FACEREC_MAX_PIXELS_PER_BYTE", default_value_t = DEFAULT_MAX_PIXELS_PER_BYTE)
    )]
    pub max_pixels_per_byte: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self { max_pixels: DEFAULT_MAX_PIXELS, max_pixels_per_byte: DEFAULT_MAX_PIXELS_PER_BYTE }
    }
}

/// Why an image is refused before decoding (`image_too_large`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ImageTooLarge {
    #[error("the image is {width}x{height} pixels, over the limit of {max_pixels} pixels")]
    TooManyPixels { width: u32, height: u32, max_pixels: u64 },
    /// Far more pixels than the file's size allows.
    #[error(transparent)]
    TooCostly(#[from] TooCostly),
}

impl ImageLimits {
    /// The one check of an image's header, for the api and the worker alike.
    pub fn check(&self, cost: DecodeCost) -> Result<(), ImageTooLarge> {
        if cost.pixels() > self.max_pixels {
            let DecodeCost { width, height, .. } = cost;
            return Err(ImageTooLarge::TooManyPixels { width, height, max_pixels: self.max_pixels });
        }
        cost.check(self.max_pixels_per_byte)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(width: u32, height: u32, encoded_bytes: u64) -> DecodeCost {
        DecodeCost { width, height, bytes_per_sample: 1, encoded_bytes }
    }

    #[test]
    fn refuses_more_pixels_than_the_limit_whatever_the_file_size() {
        let limits = ImageLimits { max_pixels: 10_000, ..ImageLimits::default() };
        assert_eq!(limits.check(cost(100, 100, 10)), Ok(()));
        let err = limits.check(cost(101, 100, 1_000_000)).unwrap_err();
        assert_eq!(err, ImageTooLarge::TooManyPixels { width: 101, height: 100, max_pixels: 10_000 });
        assert_eq!(err.to_string(), "the image is 101x100 pixels, over the limit of 10000 pixels");
    }

    #[test]
    fn refuses_cheap_images_by_the_cost_per_byte() {
        // 6000x6000 zeros in 105 KB (issue 29): within 40 megapixels, not within 50 pixels per byte.
        let zeros = cost(6000, 6000, 105_000);
        assert!(matches!(ImageLimits::default().check(zeros), Err(ImageTooLarge::TooCostly(_))));
        let unchecked = ImageLimits { max_pixels_per_byte: 0, ..ImageLimits::default() };
        assert_eq!(unchecked.check(zeros), Ok(()));
        assert_eq!(ImageLimits::default().max_pixels, 40_000_000);
    }
}
