//! The images tests send: the fetched test photos (never committed), and
//! images made from them or from nothing (two people side by side, distinct
//! uploads of one face, a photo with no face).

use std::path::PathBuf;

use anyhow::bail;

/// A test photo fetched by `scripts/fetch_assets.py photos` (never committed),
/// from `FACEREC_PHOTOS_DIR` or else the repository's `tests/fixtures/photos`.
pub fn photo(name: &str) -> Vec<u8> {
    let dir = std::env::var("FACEREC_PHOTOS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/photos"));
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `make test` to fetch the test photos", path.display()))
}

/// Encodes an image as JPEG (quality 92).
pub fn jpeg(image: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode_image(image).expect("encode JPEG");
    out.into_inner()
}

/// Two photos side by side, scaled to the same height: a photo with two people.
pub fn side_by_side(left: &[u8], right: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (l, r) = (image::load_from_memory(left)?.to_rgb8(), image::load_from_memory(right)?.to_rgb8());
    let height = l.height().min(r.height());
    let scale = |img: &image::RgbImage| {
        let w = (img.width() as u64 * height as u64 / img.height() as u64) as u32;
        image::imageops::resize(img, w, height, image::imageops::FilterType::Triangle)
    };
    let (l, r) = (scale(&l), scale(&r));
    let mut out = image::RgbImage::new(l.width() + r.width(), height);
    image::imageops::replace(&mut out, &l, 0, 0);
    image::imageops::replace(&mut out, &r, l.width() as i64, 0);
    if out.width() == 0 {
        bail!("empty composition");
    }
    Ok(jpeg(&out))
}

/// `n` different JPEGs of the same photo (mirrored or not, each a little
/// brighter): distinct uploads of one face, for loading many images.
pub fn variants(photo: &[u8], n: usize) -> Vec<Vec<u8>> {
    let base = image::load_from_memory(photo).expect("a test photo decodes").to_rgb8();
    (0..n)
        .map(|i| {
            let mut img = if i % 2 == 1 { image::imageops::flip_horizontal(&base) } else { base.clone() };
            let lift = (i / 2) as u8;
            img.pixels_mut().for_each(|p| p.0.iter_mut().for_each(|c| *c = c.saturating_add(lift)));
            jpeg(&img)
        })
        .collect()
}

/// A synthetic photo with no face: smooth gradients and a few shapes.
pub fn faceless_image() -> Vec<u8> {
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        let in_box = (100..250).contains(&x) && (120..300).contains(&y);
        if in_box { image::Rgb([30, 90, 200]) } else { image::Rgb([(x / 3) as u8, (y / 2) as u8, 128]) }
    });
    jpeg(&img)
}
