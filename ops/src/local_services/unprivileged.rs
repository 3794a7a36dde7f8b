//! PostgreSQL refuses to run as root. When Boxoffice runs as root, the database
//! server runs as the unprivileged system user `boxoffice` (created on first use),
//! which must own its data folder and be able to reach it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use nix::unistd::{Gid, Uid, User};

pub const SERVICE_USER: &str = "boxoffice";

/// The identity to run the database server as: `None` when we are not root
/// (run as ourselves), otherwise the service user.
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    pub uid: Uid,
    pub gid: Gid,
}

pub fn run_as() -> anyhow::Result<Option<RunAs>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = match User::from_name(SERVICE_USER)? {
        Some(u) => u,
        None => {
            let status = Command::new("useradd")
                .args([
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    SERVICE_USER,
                ])
                .status()
                .context("running useradd to create the database service user")?;
            anyhow::ensure!(status.success(), "useradd {SERVICE_USER} failed: {status}");
            User::from_name(SERVICE_USER)?
                .with_context(|| format!("user {SERVICE_USER} missing after useradd"))?
        }
    };
    Ok(Some(RunAs {
        uid: user.uid,
        gid: user.gid,
    }))
}

/// Whether every ancestor of `path` lets other users through (the `x` bit).
fn traversable_by_others(path: &Path) -> bool {
    path.ancestors().skip(1).all(|dir| {
        std::fs::metadata(dir)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

/// Where the cluster lives. Normally `<data_dir>/postgres`; when running as root
/// inside a folder the service user cannot reach (e.g. under `/root`), the
/// cluster is kept in `/var/lib/boxoffice/clusters/<hash of data_dir>` instead,
/// and the data folder records where.
pub fn cluster_dir(data_dir: &Path, run_as: Option<RunAs>) -> anyhow::Result<PathBuf> {
    let local = data_dir.join("postgres");
    if run_as.is_none() || traversable_by_others(&local) {
        return Ok(local);
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    let outside =
        PathBuf::from("/var/lib/boxoffice/clusters").join(format!("{:016x}", hasher.finish()));
    std::fs::create_dir_all(&outside)?;
    std::fs::write(
        data_dir.join("postgres-location.txt"),
        format!(
            "The database service user cannot reach this folder, so the PostgreSQL cluster is kept at\n{}\n",
            outside.display()
        ),
    )?;
    Ok(outside.join("postgres"))
}

/// Hands `path` (recursively) to the service user.
pub fn give_to(path: &Path, run_as: RunAs) -> anyhow::Result<()> {
    nix::unistd::chown(path, Some(run_as.uid), Some(run_as.gid))
        .with_context(|| format!("chown {}", path.display()))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            give_to(&entry?.path(), run_as)?;
        }
    }
    Ok(())
}
