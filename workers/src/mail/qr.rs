//! A ticket's QR code as a PNG image: the `fast_qr` crate lays out the
//! modules, the `png` crate writes the file. The code carries the ticket's
//! signed payload (`models::ticket_codes`) exactly, so a scanner reads what
//! the API's check-in verifies.

use fast_qr::{ECL, QRBuilder, qr::QRCodeError};

/// Pixels per module: about 4 cm for a BX1 payload on a phone screen.
const SCALE: usize = 6;
/// The quiet zone scanners need around the code, in modules.
const QUIET: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the payload does not fit a QR code: {0}")]
    Code(#[from] QRCodeError),
    #[error("the PNG can't be written: {0}")]
    Png(#[from] png::EncodingError),
}

/// A black-on-white PNG of `payload`'s QR code: one bit per pixel (the code
/// has two colours), compressed by the fast DEFLATE made for PNG. Every ticket
/// email draws one per ticket; at 8 bits and the default level, drawing them was
/// the biggest part of a confirmation's CPU. The layout still scores the eight
/// masks and keeps the best, as the standard asks; `fast_qr` does that in less
/// than half the time the `qrcode` crate took.
pub fn png(payload: &str) -> Result<Vec<u8>, QrError> {
    // Level M survives a scuffed screen or print and keeps BX1 codes small.
    let code = QRBuilder::new(payload.as_bytes()).ecl(ECL::M).build()?;
    let modules = code.size;
    let side = (modules + 2 * QUIET) * SCALE;
    // Rows of packed bits, most significant first: 1 is white, 0 black.
    let row_bytes = side.div_ceil(8);
    let mut pixels = vec![0xFFu8; row_bytes * side];
    for (i, module) in code.data[..modules * modules].iter().enumerate() {
        if !module.value() {
            continue;
        }
        let (mx, my) = (i % modules, i / modules);
        let left = (mx + QUIET) * SCALE;
        for dy in 0..SCALE {
            let row = &mut pixels[((my + QUIET) * SCALE + dy) * row_bytes..][..row_bytes];
            for x in left..left + SCALE {
                row[x / 8] &= !(0x80 >> (x % 8));
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}
