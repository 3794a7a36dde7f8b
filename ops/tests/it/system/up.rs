//! `boxoffice up` on a fresh data folder: starts its own Postgres and Redis,
//! becomes ready, and the printed demo users can log in; a second `up` on the
//! same folder reuses the data.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::harness::processes::BOXOFFICE;

pub(super) struct Up {
    child: Child,
    pub(super) base_url: String,
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(super) async fn start_up(data_dir: &std::path::Path) -> Up {
    let port = free_port();
    let mut child = Command::new(BOXOFFICE)
        .args(["up", "--data-dir"])
        .arg(data_dir)
        .args(["--http", &format!("127.0.0.1:{port}")])
        // A developer's machine: no URLs, no secrets given.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let output = output.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                output.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
    }
    let up = Up {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        output,
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{}/readyz", up.base_url)).send().await
            && r.status() == 200
        {
            return up;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "up did not become ready:\n{}",
            up.output.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Up {
    pub(super) fn printed(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The demo users `up` printed: (role, email, password).
    pub(super) fn demo_users(&self) -> Vec<(String, String, String)> {
        self.printed()
            .lines()
            .filter_map(|l| {
                let parts: Vec<&str> = l.split_whitespace().collect();
                (parts.len() == 3 && parts[1].ends_with("@boxoffice.test")).then(|| {
                    (
                        parts[0].to_owned(),
                        parts[1].to_owned(),
                        parts[2].to_owned(),
                    )
                })
            })
            .collect()
    }

    pub(super) async fn stop(mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("up stops within 60 s")
            .unwrap();
        assert!(
            status.success(),
            "up exited with {status}:\n{}",
            self.printed()
        );
        self.printed()
    }
}

async fn login(base_url: &str, email: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base_url}/v1/auth/login"))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn up_starts_everything_seeds_demo_users_and_reuses_its_data() {
    let data_dir = tempdir();

    let first = start_up(&data_dir).await;
    let users = first.demo_users();
    let roles: Vec<&str> = users.iter().map(|u| u.0.as_str()).collect();
    assert_eq!(
        roles,
        ["admin", "organizer", "participant"],
        "printed:\n{}",
        first.printed()
    );
    for (role, email, password) in &users {
        let r = login(&first.base_url, email, password).await;
        assert_eq!(r.status(), 200, "{role} cannot log in");
        let tokens: serde_json::Value = r.json().await.unwrap();
        let me: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/v1/me", first.base_url))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            me["roles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == role.as_str()),
            "{me}"
        );
    }
    // Something created during the first run must still be there in the second.
    let registered = reqwest::Client::new()
        .post(format!("{}/v1/auth/register", first.base_url))
        .json(&serde_json::json!({
            "email": "kept@example.com", "password": "a-long-enough-password", "display_name": "Kept"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let first_output = first.stop().await;
    assert!(first_output.contains("migrations: "), "{first_output}");

    let second = start_up(&data_dir).await;
    assert_eq!(
        second.demo_users(),
        users,
        "the same demo users and passwords"
    );
    assert!(
        second.printed().contains("migrations: 0 applied"),
        "{}",
        second.printed()
    );
    let r = login(
        &second.base_url,
        "kept@example.com",
        "a-long-enough-password",
    )
    .await;
    assert_eq!(r.status(), 200, "data from the first run is kept");
    second.stop().await;

    let _ = std::fs::remove_dir_all(&data_dir);
}

/// A folder under the system temp dir, which the unprivileged database user can reach.
pub(super) fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("boxoffice-up-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
