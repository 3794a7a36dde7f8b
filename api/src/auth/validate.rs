//! Parsed identity inputs: once a handler holds an [`Email`] or a
//! [`DisplayName`], it is normalised and fits the `users` table's constraints,
//! and a password has passed the policy. Every check here runs before argon2, so
//! an oversized input costs nothing.

use crate::error::AppError;

pub const EMAIL_MAX: usize = 254;
pub const DISPLAY_NAME_MAX: usize = 100;
pub const PASSWORD_MIN: usize = 10;
pub const PASSWORD_MAX: usize = 128;

/// A normalised email address: trimmed and lower-cased.
///
/// Only printable ASCII is accepted. Internationalised addresses are rare, and
/// Rust's and PostgreSQL's lower-casing of non-ASCII letters can disagree, which
/// the table's `email = lower(btrim(email))` check would then refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        if raw.len() > EMAIL_MAX + 64 {
            return Err("the email is too long");
        }
        let email = raw.trim().to_ascii_lowercase();
        if email.is_empty() {
            return Err("the email is required");
        }
        if email.len() > EMAIL_MAX {
            return Err("the email is longer than 254 characters");
        }
        if !email.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the email may contain only printable ASCII characters and no spaces");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("the email needs an @");
        };
        if local.is_empty() || local.len() > 64 {
            return Err("the part before the @ must be 1 to 64 characters");
        }
        if domain.contains('@') {
            return Err("the email has more than one @");
        }
        let labels_ok = domain
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
        if !domain.contains('.') || !labels_ok {
            return Err("the part after the @ must be a domain such as example.com");
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }

    /// As [`Email::parse`], failing with a 422 naming `field`.
    pub fn parse_field(raw: &str, field: &str) -> Result<Email, AppError> {
        Email::parse(raw).map_err(|msg| AppError::validation(field, msg))
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters
/// (PostgreSQL text cannot hold NUL, and the rest do not belong in a name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<DisplayName, &'static str> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("the display name is required");
        }
        if name.chars().count() > DISPLAY_NAME_MAX {
            return Err("the display name is longer than 100 characters");
        }
        if name.chars().any(char::is_control) {
            return Err("the display name may not contain control characters");
        }
        Ok(DisplayName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }

    pub fn parse_field(raw: &str, field: &str) -> Result<DisplayName, AppError> {
        DisplayName::parse(raw).map_err(|msg| AppError::validation(field, msg))
    }
}

/// The password policy: 10 to 128 characters and not the account's email.
pub fn check_password_policy(password: &str, email: &Email) -> Result<(), &'static str> {
    // Counting is bounded by the byte length first, so a huge input is cheap to refuse.
    if password.len() > PASSWORD_MAX * 4 {
        return Err("the password is longer than 128 characters");
    }
    let chars = password.chars().count();
    if chars < PASSWORD_MIN {
        return Err("the password must be at least 10 characters");
    }
    if chars > PASSWORD_MAX {
        return Err("the password is longer than 128 characters");
    }
    if password.trim().to_lowercase() == email.as_str() {
        return Err("the password may not be the email address");
    }
    Ok(())
}

/// A password presented to be checked (login, current password): only bounded,
/// so a 1 MB string never reaches argon2. The policy is not applied, so an
/// account created under an older policy can still sign in.
pub fn check_presented_password(password: &str, field: &str) -> Result<(), AppError> {
    if password.is_empty() {
        return Err(AppError::validation(field, "the password is required"));
    }
    if password.len() > PASSWORD_MAX * 4 || password.chars().count() > PASSWORD_MAX {
        return Err(AppError::validation(
            field,
            "the password is longer than 128 characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let e = Email::parse("  Alice.Smith+tix@Example.COM \n").unwrap();
        assert_eq!(e.as_str(), "alice.smith+tix@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "   ",
            "no-at-sign",
            "@example.com",
            "a@",
            "a@b@example.com",
            "a@localhost",
            "a@.example.com",
            "a@example..com",
            "a@-example.com",
            "a b@example.com",
            "zoë@example.com",
            "nul\0@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn email_length_is_capped_at_254() {
        let local = "a".repeat(64);
        let domain = format!("{}.com", "d".repeat(254 - 64 - 1 - 4));
        let exact = format!("{local}@{domain}");
        assert_eq!(exact.len(), 254);
        assert!(Email::parse(&exact).is_ok());
        let over = format!("{local}@d{domain}");
        assert!(Email::parse(&over).is_err());
        assert!(Email::parse(&"x".repeat(1 << 20)).is_err());
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Zoë  ").unwrap().as_str(), "Zoë");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(101)).is_err());
        assert!(DisplayName::parse("tab\there").is_err());
        assert!(DisplayName::parse("nul\0").is_err());
    }

    #[test]
    fn password_policy() {
        let email = Email::parse("someone@example.com").unwrap();
        assert!(
            check_password_policy("123456789", &email).is_err(),
            "9 characters"
        );
        assert!(
            check_password_policy("1234567890", &email).is_ok(),
            "10 characters"
        );
        // Ten characters counted as characters, not bytes.
        assert!(check_password_policy("ééééééééé", &email).is_err());
        assert!(check_password_policy(&"p".repeat(128), &email).is_ok());
        assert!(check_password_policy(&"p".repeat(129), &email).is_err());
        assert!(check_password_policy(&"p".repeat(1 << 20), &email).is_err());
        assert!(check_password_policy("SomeOne@Example.com", &email).is_err());
        assert!(check_password_policy(" someone@example.com ", &email).is_err());
    }

    #[test]
    fn presented_passwords_are_only_bounded() {
        assert!(check_presented_password("short", "password").is_ok());
        assert!(check_presented_password("", "password").is_err());
        assert!(check_presented_password(&"p".repeat(129), "password").is_err());
    }
}
