//! The path every upload takes: the api's header check (type from the bytes,
//! dimensions, pixel limit), then, for what passes, the worker's decode
//! (EXIF orientation, pixel-format conversion, memory limits). Any panic,
//! abort, sanitizer report or runaway allocation is a bug.

#![no_main]

use std::sync::OnceLock;

use clap::Parser;
use facerec_vision::{DecodeLimits, decode_image};
use libfuzzer_sys::fuzz_target;

fn settings() -> &'static facerec_api::Settings {
    static SETTINGS: OnceLock<facerec_api::Settings> = OnceLock::new();
    // Small limits keep each execution fast; the checks are the same code.
    SETTINGS.get_or_init(|| {
        facerec_api::Settings::parse_from(["fuzz", "--max-upload-bytes", "1000000", "--max-pixels", "4000000"])
    })
}

fuzz_target!(|data: &[u8]| {
    if facerec_api::check_image(data, settings()).is_ok() {
        let mut limits = DecodeLimits { max_alloc_bytes: 64 * 1024 * 1024, ..DecodeLimits::default() };
        limits.image.max_pixels = 4_000_000;
        if let Ok(image) = decode_image(data, limits) {
            assert!(u64::from(image.width()) * u64::from(image.height()) <= 4_000_000);
        }
    }
});
