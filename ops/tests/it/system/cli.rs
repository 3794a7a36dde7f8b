//! The `boxoffice` command's administration and start-up checks, run for real.

use std::process::Stdio;

use boxoffice_models::users;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::harness::TestApp;
use crate::harness::processes::BOXOFFICE;

async fn boxoffice(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(BOXOFFICE)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the command finishes")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn create_admin_reads_the_password_from_stdin_and_the_admin_can_log_in() {
    let app = TestApp::spawn().await;
    let env = [("DATABASE_URL", app.db.url.as_str())];
    let (ok, out) = boxoffice(
        &[
            "users",
            "create-admin",
            "--email",
            "Root@Example.com",
            "--password-stdin",
        ],
        &env,
        Some("a-long-admin-password\n"),
    )
    .await;
    assert!(ok, "{out}");
    let mut conn = app.raw_conn().await;
    let admin = users::find_by_email(&mut conn, "root@example.com")
        .await
        .unwrap()
        .expect("created");
    assert!(admin.has_role(users::Role::Admin));
    let r = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&serde_json::json!({ "email": "root@example.com", "password": "a-long-admin-password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A weak password is refused, and nothing is created.
    let (ok, out) = boxoffice(
        &[
            "users",
            "create-admin",
            "--email",
            "weak@example.com",
            "--password-stdin",
        ],
        &env,
        Some("short\n"),
    )
    .await;
    assert!(!ok);
    assert!(out.contains("password"), "{out}");
    assert!(
        users::find_by_email(&mut conn, "weak@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn production_refuses_to_start_with_a_weak_or_missing_jwt_secret() {
    let app = TestApp::spawn().await;
    let base = [
        ("DATABASE_URL", app.db.url.as_str()),
        ("REDIS_URL", "redis://127.0.0.1:1/"),
        ("BOXOFFICE_ENV", "production"),
        ("BOXOFFICE_HTTP_ADDR", "127.0.0.1:0"),
    ];
    for secret in [
        None,
        Some("short"),
        Some("boxoffice-secret-boxoffice-secret-1234"),
    ] {
        let mut env = base.to_vec();
        if let Some(s) = secret {
            env.push(("BOXOFFICE_JWT_SECRET", s));
        }
        let (ok, out) = boxoffice(&["serve"], &env, None).await;
        assert!(!ok, "started with {secret:?}: {out}");
        assert!(
            out.contains("BOXOFFICE_JWT_SECRET"),
            "the message names the variable: {out}"
        );
    }
    let (ok, out) = boxoffice(&["migrate"], &[], None).await;
    assert!(!ok);
    assert!(out.contains("DATABASE_URL"), "{out}");
}

#[tokio::test]
async fn a_wildcard_cors_origin_stops_the_start_with_a_message_naming_the_variable() {
    let app = TestApp::spawn().await;
    for origins in ["*", "https://tickets.example.com,*"] {
        let env = [
            ("DATABASE_URL", app.db.url.as_str()),
            ("REDIS_URL", "redis://127.0.0.1:1/"),
            ("BOXOFFICE_HTTP_ADDR", "127.0.0.1:0"),
            ("BOXOFFICE_JWT_SECRET", "k3J9x-Qp7vT2mZ8rW4yB6nL1cF5hD0sG"),
            ("BOXOFFICE_CORS_ORIGINS", origins),
        ];
        let (ok, out) = boxoffice(&["serve"], &env, None).await;
        assert!(!ok, "started with {origins:?}: {out}");
        assert!(
            out.contains("BOXOFFICE_CORS_ORIGINS is invalid: `*` is not allowed"),
            "the message names the variable and says why: {out}"
        );
        assert!(!out.contains("panicked"), "{out}");
    }
}
