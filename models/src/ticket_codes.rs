//! Ticket numbers and signed QR payloads. Pure: no IO besides the OS random
//! generator, so the API, the workers and a scanner's code can share it.
//!
//! # Ticket numbers
//! 128 random bits from the operating system's generator, written in Crockford
//! base32 (no I, L, O, U; case-insensitive) in groups of four for reading aloud:
//! `3ZK7-M1QD-...-X4`. Unguessable, so knowing one ticket's number tells nothing
//! about another's; unique by the database's constraint (a collision at 128 bits
//! is not a practical concern, and would fail the insert rather than share a number).
//!
//! # QR payloads (format `BX1`)
//! `BX1.<base64url(body)>.<base64url(signature)>`, base64url without padding:
//! - `body` is 48 fixed bytes: ticket id (16), event id (16), number (16).
//!   Fixed bytes rather than JSON keep the code small enough for a dense QR.
//! - `signature` is Ed25519 over `"BX1" || body`. The version is inside the signed
//!   message, so a signature made for one format can never be read under another.
//!
//! A scanner holding only the public key (`GET /v1/tickets/public-key`) verifies
//! a payload offline with [`verify`]. Whether the ticket is still valid or already
//! checked in needs the server.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::TryRng;
use uuid::Uuid;

/// The payload format this code writes and reads.
pub const FORMAT: &str = "BX1";
/// The signature algorithm, as published with the public key.
pub const ALGORITHM: &str = "Ed25519";

const BODY_LEN: usize = 48;
const SIGNATURE_LEN: usize = 64;

// ---------------------------------------------------------------- numbers

/// Crockford's base32 alphabet: digits and letters without I, L, O, U.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 128 bits in 5-bit symbols: 26 symbols, the first carrying only 3 bits.
const NUMBER_SYMBOLS: usize = 26;
const GROUP: usize = 4;

/// A ticket's number: 16 random bytes, shown as grouped Crockford base32.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketNumber([u8; 16]);

impl TicketNumber {
    /// A fresh number from the OS random generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        // getrandom only fails on a system without an entropy source; nothing
        // sensible can be issued there, and `rand::rng()` would panic the same way.
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .expect("the operating system's random generator is available");
        TicketNumber(bytes)
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        TicketNumber(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for TicketNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = u128::from_be_bytes(self.0);
        for i in 0..NUMBER_SYMBOLS {
            if i > 0 && i % GROUP == 0 {
                f.write_str("-")?;
            }
            let shift = 5 * (NUMBER_SYMBOLS - 1 - i);
            let symbol = ((value >> shift) & 0x1f) as usize;
            write!(f, "{}", CROCKFORD[symbol] as char)?;
        }
        Ok(())
    }
}

impl fmt::Debug for TicketNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketNumber({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a ticket number: expected 26 Crockford base32 symbols")]
pub struct InvalidTicketNumber;

impl FromStr for TicketNumber {
    type Err = InvalidTicketNumber;

    /// Reads a number as a person may type it: any case, with or without dashes
    /// and spaces, and Crockford's look-alikes (`O` for 0, `I`/`L` for 1).
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut value: u128 = 0;
        let mut count = 0usize;
        for c in raw.chars() {
            if c == '-' || c == ' ' {
                continue;
            }
            let symbol = match c.to_ascii_uppercase() {
                'O' => 0,
                'I' | 'L' => 1,
                upper => CROCKFORD
                    .iter()
                    .position(|&s| s as char == upper)
                    .ok_or(InvalidTicketNumber)? as u128,
            };
            count += 1;
            // The first symbol carries 3 bits only (26 × 5 = 130 > 128).
            if count > NUMBER_SYMBOLS || (count == 1 && symbol > 7) {
                return Err(InvalidTicketNumber);
            }
            value = (value << 5) | symbol;
        }
        if count != NUMBER_SYMBOLS {
            return Err(InvalidTicketNumber);
        }
        Ok(TicketNumber(value.to_be_bytes()))
    }
}

// ---------------------------------------------------------------- claims

/// What a QR payload asserts: this ticket, of this event, with this number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketClaims {
    pub ticket_id: Uuid,
    pub event_id: Uuid,
    pub number: TicketNumber,
}

impl TicketClaims {
    fn to_body(self) -> [u8; BODY_LEN] {
        let mut body = [0u8; BODY_LEN];
        body[..16].copy_from_slice(self.ticket_id.as_bytes());
        body[16..32].copy_from_slice(self.event_id.as_bytes());
        body[32..].copy_from_slice(self.number.as_bytes());
        body
    }

    fn from_body(body: &[u8; BODY_LEN]) -> Self {
        let part = |range: std::ops::Range<usize>| -> [u8; 16] {
            body[range]
                .try_into()
                .expect("16-byte slice of a fixed body")
        };
        TicketClaims {
            ticket_id: Uuid::from_bytes(part(0..16)),
            event_id: Uuid::from_bytes(part(16..32)),
            number: TicketNumber(part(32..48)),
        }
    }
}

/// The message a signature covers: the format tag, then the body.
fn signed_message(body: &[u8; BODY_LEN]) -> [u8; FORMAT.len() + BODY_LEN] {
    let mut message = [0u8; FORMAT.len() + BODY_LEN];
    message[..FORMAT.len()].copy_from_slice(FORMAT.as_bytes());
    message[FORMAT.len()..].copy_from_slice(body);
    message
}

// ---------------------------------------------------------------- keys

/// Why a QR payload was refused. Each is a different story for a scanner:
/// garbage, a code from a newer (or foreign) system, or a forgery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("the QR payload is malformed: {0}")]
    Malformed(&'static str),
    #[error("the QR payload has format {0:?}, expected {FORMAT}")]
    UnsupportedVersion(String),
    #[error("the QR payload's signature does not verify")]
    BadSignature,
}

impl QrError {
    /// A stable name for clients and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            QrError::Malformed(_) => "malformed",
            QrError::UnsupportedVersion(_) => "unsupported_version",
            QrError::BadSignature => "bad_signature",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not base64")]
    NotBase64,
    #[error("expected 32 bytes, got {0}")]
    WrongLength(usize),
    #[error("not a valid Ed25519 public key")]
    InvalidPoint,
}

/// Decodes standard or URL-safe base64, padded or not: keys are pasted by people.
fn decode_base64_any(raw: &str) -> Option<Vec<u8>> {
    let trimmed = raw.trim().trim_end_matches('=');
    URL_SAFE_NO_PAD.decode(trimmed).ok().or_else(|| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .ok()
    })
}

const DEVELOPMENT_SEED: &[u8; 32] = b"boxoffice-development-ticket-key";

/// Signs tickets. Holds the private key; its `Debug` shows only the public key.
#[derive(Clone)]
pub struct TicketSigner {
    key: SigningKey,
}

impl TicketSigner {
    /// The signer of a 32-byte Ed25519 seed (the private key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        TicketSigner {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The well-known development key: lets `serve` and `work` started in
    /// development without a key agree on one. Its seed is public (it is this
    /// line), so tickets it signs prove nothing; production refuses it.
    pub fn development() -> Self {
        Self::from_seed(DEVELOPMENT_SEED)
    }

    /// Whether this is [`TicketSigner::development`]'s key.
    pub fn is_development(&self) -> bool {
        self.key.to_bytes() == *DEVELOPMENT_SEED
    }

    /// The signer of a base64 seed (`BOXOFFICE_TICKET_SIGNING_KEY`).
    pub fn from_base64_seed(raw: &str) -> Result<Self, KeyError> {
        let bytes = decode_base64_any(raw).ok_or(KeyError::NotBase64)?;
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength(bytes.len()))?;
        Ok(Self::from_seed(&seed))
    }

    /// A fresh random seed, base64 (what `boxoffice up` keeps in its data folder).
    pub fn generate_seed_base64() -> String {
        let mut seed = [0u8; 32];
        rand::rngs::SysRng
            .try_fill_bytes(&mut seed)
            .expect("the operating system's random generator is available");
        STANDARD.encode(seed)
    }

    pub fn public_key(&self) -> TicketPublicKey {
        TicketPublicKey(self.key.verifying_key())
    }

    /// The public key, standard base64 of its 32 bytes.
    pub fn public_key_base64(&self) -> String {
        self.public_key().to_base64()
    }

    /// The QR payload of `claims`. Ed25519 is deterministic: the same claims
    /// always give the same payload, so re-issuing a ticket reprints the same code.
    pub fn sign(&self, claims: &TicketClaims) -> String {
        let body = claims.to_body();
        let signature = self.key.sign(&signed_message(&body));
        format!(
            "{FORMAT}.{}.{}",
            URL_SAFE_NO_PAD.encode(body),
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// [`verify`] with this signer's own public key.
    pub fn verify(&self, payload: &str) -> Result<TicketClaims, QrError> {
        verify(&self.public_key(), payload)
    }
}

impl fmt::Debug for TicketSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketSigner")
            .field("public_key", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

/// The key a scanner needs to verify tickets offline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TicketPublicKey(VerifyingKey);

impl TicketPublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(TicketPublicKey)
            .map_err(|_| KeyError::InvalidPoint)
    }

    pub fn from_base64(raw: &str) -> Result<Self, KeyError> {
        let bytes = decode_base64_any(raw).ok_or(KeyError::NotBase64)?;
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength(bytes.len()))?;
        Self::from_bytes(&bytes)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }
}

impl fmt::Debug for TicketPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketPublicKey({})", self.to_base64())
    }
}

/// Checks a QR payload against `public_key` and returns what it claims.
///
/// Strict Ed25519 verification: non-canonical and malleable signatures and weak
/// keys are refused, so one ticket has exactly one valid payload per key.
pub fn verify(public_key: &TicketPublicKey, payload: &str) -> Result<TicketClaims, QrError> {
    // Scanners may add a trailing newline or spaces; nothing else is forgiven.
    let payload = payload.trim();
    let mut parts = payload.split('.');
    let (Some(version), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(if payload.starts_with(FORMAT) || !payload.contains('.') {
            QrError::Malformed("expected three dot-separated parts")
        } else {
            unsupported(payload.split('.').next().unwrap_or_default())
        });
    };
    if version != FORMAT {
        return Err(unsupported(version));
    }
    let body: [u8; BODY_LEN] = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| QrError::Malformed("the body is not base64url"))?
        .try_into()
        .map_err(|_| QrError::Malformed("the body has the wrong length"))?;
    let signature: [u8; SIGNATURE_LEN] = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| QrError::Malformed("the signature is not base64url"))?
        .try_into()
        .map_err(|_| QrError::Malformed("the signature has the wrong length"))?;
    public_key
        .0
        .verify_strict(&signed_message(&body), &Signature::from_bytes(&signature))
        .map_err(|_| QrError::BadSignature)?;
    Ok(TicketClaims::from_body(&body))
}

/// A version tag we don't read. Long or binary junk is cut, so an error message
/// never echoes a whole hostile payload.
fn unsupported(version: &str) -> QrError {
    let shown: String = version
        .chars()
        .take(16)
        .filter(|c| c.is_ascii_graphic())
        .collect();
    QrError::UnsupportedVersion(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(n: u8) -> TicketSigner {
        TicketSigner::from_seed(&[n; 32])
    }

    fn claims() -> TicketClaims {
        TicketClaims {
            ticket_id: Uuid::new_v4(),
            event_id: Uuid::new_v4(),
            number: TicketNumber::generate(),
        }
    }

    #[test]
    fn a_signed_payload_verifies_and_returns_its_claims() {
        let signer = signer(1);
        let claims = claims();
        let payload = signer.sign(&claims);
        assert!(payload.starts_with("BX1."), "{payload}");
        assert_eq!(verify(&signer.public_key(), &payload), Ok(claims));
        // A scanner only has the published base64 key.
        let published = TicketPublicKey::from_base64(&signer.public_key_base64()).unwrap();
        assert_eq!(verify(&published, &payload), Ok(claims));
        // Deterministic: signing again prints the same code.
        assert_eq!(signer.sign(&claims), payload);
    }

    #[test]
    fn many_random_tickets_round_trip_and_fail_under_another_key() {
        let mut seed = [0u8; 32];
        rand::rngs::SysRng.try_fill_bytes(&mut seed).unwrap();
        let signer = TicketSigner::from_seed(&seed);
        let other = TicketSigner::from_seed(&[2; 32]);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let claims = claims();
            let payload = signer.sign(&claims);
            assert_eq!(signer.verify(&payload), Ok(claims), "{payload}");
            assert_eq!(
                other.verify(&payload),
                Err(QrError::BadSignature),
                "{payload}"
            );
            assert!(payload.len() < 200, "compact: {} chars", payload.len());
            assert!(
                seen.insert(claims.number),
                "a repeated number: {}",
                claims.number
            );
        }
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let signer = signer(3);
        let claims = claims();
        let payload = signer.sign(&claims);
        let [_, body, signature]: [&str; 3] =
            payload.split('.').collect::<Vec<_>>().try_into().unwrap();
        let body = URL_SAFE_NO_PAD.decode(body).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let rebuild = |b: &[u8], s: &[u8]| {
            format!(
                "BX1.{}.{}",
                URL_SAFE_NO_PAD.encode(b),
                URL_SAFE_NO_PAD.encode(s)
            )
        };
        for i in 0..body.len() {
            for bit in [0x01u8, 0x80] {
                let mut tampered = body.clone();
                tampered[i] ^= bit;
                assert_eq!(
                    signer.verify(&rebuild(&tampered, &signature)),
                    Err(QrError::BadSignature),
                    "body byte {i}"
                );
            }
        }
        for i in 0..signature.len() {
            let mut tampered = signature.clone();
            tampered[i] ^= 0x01;
            assert_eq!(
                signer.verify(&rebuild(&body, &tampered)),
                Err(QrError::BadSignature),
                "signature byte {i}"
            );
        }
    }

    #[test]
    fn malformed_payloads_are_told_apart_from_forgeries() {
        let signer = signer(4);
        let payload = signer.sign(&claims());
        let (prefix, rest) = payload.split_once('.').unwrap();
        assert_eq!(prefix, "BX1");
        let (body, signature) = rest.split_once('.').unwrap();
        for bad in [
            "",
            "hello",
            "BX1",
            "BX1..",
            &format!("BX1.{body}"),
            &format!("BX1.{body}.{signature}.extra"),
            &format!("BX1.{body}!.{signature}"),
            &format!("BX1.{}.{signature}", &body[..body.len() - 4]),
            &format!("BX1.{body}.{}", &signature[..signature.len() - 4]),
        ] {
            assert!(
                matches!(signer.verify(bad), Err(QrError::Malformed(_))),
                "{bad:?} → {:?}",
                signer.verify(bad)
            );
        }
        assert_eq!(
            signer.verify(&format!("BX2.{body}.{signature}")),
            Err(QrError::UnsupportedVersion("BX2".into()))
        );
        assert_eq!(
            signer.verify(&format!("bx1.{body}.{signature}")),
            Err(QrError::UnsupportedVersion("bx1".into()))
        );
        // Surrounding whitespace from a scanner is forgiven.
        assert!(signer.verify(&format!(" {payload}\n")).is_ok());
    }

    #[test]
    fn a_signature_does_not_carry_over_to_another_version_tag() {
        // Even if a later format reused the body layout, the tag is signed.
        let signer = signer(5);
        let claims = claims();
        let body = claims.to_body();
        let mut message = b"BX2".to_vec();
        message.extend_from_slice(&body);
        let foreign = signer.key.sign(&message);
        let payload = format!(
            "BX1.{}.{}",
            URL_SAFE_NO_PAD.encode(body),
            URL_SAFE_NO_PAD.encode(foreign.to_bytes())
        );
        assert_eq!(signer.verify(&payload), Err(QrError::BadSignature));
    }

    #[test]
    fn numbers_print_grouped_and_parse_back_forgivingly() {
        for _ in 0..200 {
            let number = TicketNumber::generate();
            let shown = number.to_string();
            assert_eq!(shown.len(), 26 + 6, "{shown}");
            assert!(
                shown.bytes().all(|b| b == b'-' || CROCKFORD.contains(&b)),
                "{shown}"
            );
            assert_eq!(shown.parse(), Ok(number));
            assert_eq!(shown.to_lowercase().replace('-', "").parse(), Ok(number));
        }
        let max = TicketNumber::from_bytes([0xff; 16]).to_string();
        assert_eq!(max, "7ZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZ");
        assert_eq!(
            TicketNumber::from_bytes([0; 16]).to_string(),
            "0000-0000-0000-0000-0000-0000-00"
        );
        // Look-alikes read as the digits they resemble.
        assert_eq!(
            "OOOO-OOOO-OOOO-OOOO-OOOO-OOOO-Oi".parse(),
            Ok(TicketNumber::from_bytes(1u128.to_be_bytes()))
        );
        for bad in [
            "",
            "8ZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZ",
            "0000-0000",
            "0000-0000-0000-0000-0000-0000-0U",
            &format!("{max}0"),
        ] {
            assert_eq!(
                bad.parse::<TicketNumber>(),
                Err(InvalidTicketNumber),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_load_from_base64_and_never_print_the_secret() {
        let seed = TicketSigner::generate_seed_base64();
        let signer = TicketSigner::from_base64_seed(&seed).unwrap();
        let again = TicketSigner::from_base64_seed(&seed).unwrap();
        assert_eq!(signer.public_key(), again.public_key());
        assert!(!format!("{signer:?}").contains(&seed));
        assert!(!signer.is_development());
        assert!(TicketSigner::development().is_development());
        assert_eq!(
            TicketSigner::from_base64_seed("not base64!").unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(
            TicketSigner::from_base64_seed(&STANDARD.encode([1u8; 16])).unwrap_err(),
            KeyError::WrongLength(16)
        );
        assert_eq!(
            TicketPublicKey::from_base64(&STANDARD.encode([0u8; 31])).unwrap_err(),
            KeyError::WrongLength(31)
        );
    }
}
