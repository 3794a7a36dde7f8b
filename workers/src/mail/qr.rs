//! A ticket's QR code as a PNG image: the `qrcode` crate lays out the modules,
//! the `png` crate writes the file. The code carries the ticket's signed
//! payload (`models::ticket_codes`) exactly, so a scanner reads what the
//! API's check-in verifies.

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module: about 4 cm for a BX1 payload on a phone screen.
const SCALE: usize = 6;
/// The quiet zone scanners need around the code, in modules.
const QUIET: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the payload does not fit a QR code: {0}")]
    Code(#[from] qrcode::types::QrError),
    #[error("the PNG can't be written: {0}")]
    Png(#[from] png::EncodingError),
}

/// A black-on-white grayscale PNG of `payload`'s QR code.
pub fn png(payload: &str) -> Result<Vec<u8>, QrError> {
    // Level M survives a scuffed screen or print and keeps BX1 codes small.
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules, i / modules);
        for dy in 0..SCALE {
            let row = (my + QUIET) * SCALE + dy;
            let start = row * side + (mx + QUIET) * SCALE;
            pixels[start..start + SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}
