//! The README's checkout walkthrough, run as a script against `boxoffice up`
//! on a machine without `uuidgen`: the block is read from the README itself,
//! so the documentation and what works cannot drift apart.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::up::{start_up, tempdir};

/// The fenced block after the README's `<!-- walkthrough -->` marker.
fn walkthrough() -> String {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&readme).unwrap();
    let after = text
        .split_once("<!-- walkthrough -->")
        .expect("the README marks its walkthrough")
        .1;
    let body = after
        .trim_start()
        .strip_prefix("```bash\n")
        .expect("a bash block follows the marker");
    body.split_once("\n```")
        .expect("the block is closed")
        .0
        .to_owned()
}

/// A folder of links to every program on `PATH` but `uuidgen`, as on a fresh
/// Debian machine that lacks it.
fn path_without_uuidgen(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    for folder in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let link = bin.join(&name);
            if name == "uuidgen" || link.exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(entry.path(), link);
        }
    }
    bin
}

#[tokio::test]
async fn the_readme_walkthrough_buys_tickets_without_uuidgen() {
    let script = walkthrough();
    assert!(!script.contains("uuidgen"), "{script}");

    let data_dir = tempdir();
    let up = start_up(&data_dir).await;
    let printed = up.printed();
    let sandbox = printed
        .lines()
        .find_map(|l| l.strip_prefix("payments: sandbox provider at "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("up printed no sandbox address:\n{printed}"))
        .to_owned();
    let password = up
        .demo_users()
        .into_iter()
        .find(|(role, _, _)| role == "participant")
        .expect("a demo participant")
        .2;

    let bin = path_without_uuidgen(&data_dir);
    let started = Instant::now();
    let run = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env_clear()
        .env("PATH", &bin)
        .env("HOME", &data_dir)
        .env("API", &up.base_url)
        .env("SANDBOX", &sandbox)
        .env("PASSWORD", &password)
        .current_dir(&data_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the walkthrough finishes within 2 minutes")
        .unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walkthrough failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // The script printed the view twice: waiting for the payment, then done.
    let views: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("not JSON views ({e}):\n{stdout}"));
    assert_eq!(views.len(), 2, "{stdout}");
    assert!(views[0]["payment"]["intent_id"].is_string(), "{}", views[0]);
    let done = &views[1];
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["booking_id"].is_string(), "{done}");
    assert_eq!(
        done["ticket_ids"].as_array().map(Vec::len),
        Some(2),
        "{done}"
    );
    println!("the walkthrough bought 2 tickets in {elapsed:?}");

    up.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
}
