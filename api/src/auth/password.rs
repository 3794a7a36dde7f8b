//! argon2id password hashing, off the async runtime.
//!
//! Hashing costs ~19 MiB and tens of milliseconds by design, so it runs on the
//! blocking pool, and a semaphore bounds how many run at once: a burst of logins
//! queues instead of exhausting memory.

use std::sync::LazyLock;

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

static PERMITS: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Semaphore::new(cores * 2)
});

/// A hash of a random password, verified against when the email is unknown so an
/// unknown account costs the same time as a wrong password (no account probing
/// by timing).
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random: [u8; 32] = rand::random();
    hash_blocking(&random).unwrap_or_default()
});

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let _permit = PERMITS
        .acquire()
        .await
        .context("password semaphore closed")?;
    tokio::task::spawn_blocking(f)
        .await
        .context("password hashing task failed")
}

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes) and a
/// random salt, into a PHC string.
pub async fn hash_password(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    blocking(move || hash_blocking(password.as_bytes())).await?
}

/// Whether `password` matches the PHC string `hash`. A malformed stored hash is
/// an error, not a mismatch.
pub async fn verify_password(password: &str, hash: &str) -> anyhow::Result<bool> {
    let password = password.to_owned();
    let hash = hash.to_owned();
    blocking(move || verify_blocking(&password, &hash)).await?
}

/// Spends the time of one verification and always fails; for unknown accounts.
pub async fn verify_dummy(password: &str) -> anyhow::Result<bool> {
    let password = password.to_owned();
    blocking(move || {
        let _ = verify_blocking(&password, &DUMMY_HASH);
        Ok(false)
    })
    .await?
}

fn hash_blocking(password: &[u8]) -> anyhow::Result<String> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password)
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))?;
    Ok(hash.to_string())
}

fn verify_blocking(password: &str, hash: &str) -> anyhow::Result<bool> {
    let parsed =
        PasswordHash::new(hash).map_err(|e| anyhow::anyhow!("stored password hash: {e}"))?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(anyhow::anyhow!("verifying password: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            verify_password("correct horse battery", &hash)
                .await
                .unwrap()
        );
        assert!(
            !verify_password("correct horse batterY", &hash)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let a = hash_password("same password!").await.unwrap();
        let b = hash_password("same password!").await.unwrap();
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn the_dummy_never_matches_and_a_broken_hash_is_an_error() {
        assert!(!verify_dummy("anything at all").await.unwrap());
        assert!(verify_password("x", "not a phc string").await.is_err());
    }
}
