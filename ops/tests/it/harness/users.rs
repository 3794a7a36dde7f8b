//! Users with roles and tokens, made the way a client would: register and log in
//! over HTTP; only the roles are set directly in the database (there is no admin
//! yet to grant them).

use boxoffice_models::users::{self, Role};
use serde_json::{Value, json};
use uuid::Uuid;

use super::TestApp;

/// A registered, signed-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestUser {
    /// The `Authorization` header value of the access token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.access_token)
    }
}

/// The tokens of one login.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
}

impl TestApp {
    /// Registers a user with a fresh email, gives them `roles` (participant when
    /// empty), and logs them in.
    pub async fn create_user(&self, roles: &[Role]) -> TestUser {
        let tag = Uuid::new_v4().simple().to_string();
        let email = format!("user-{}@example.com", &tag[..12]);
        let password = format!("pw-{tag}");
        let id = self.register(&email, &password, "Test User").await;
        if !roles.is_empty() && roles != [Role::Participant] {
            let mut conn = self.pool().get().await.expect("a connection");
            users::set_roles(&mut conn, id, roles)
                .await
                .expect("setting roles")
                .expect("the user exists");
        }
        let tokens = self.login(&email, &password).await;
        TestUser {
            id,
            email,
            password,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        }
    }

    /// `POST /v1/auth/register`, expecting 201; returns the new user's id.
    pub async fn register(&self, email: &str, password: &str, display_name: &str) -> Uuid {
        let r = self
            .client
            .post(self.url("/v1/auth/register"))
            .json(&json!({"email": email, "password": password, "display_name": display_name}))
            .send()
            .await
            .expect("register request");
        let status = r.status();
        let body: Value = r.json().await.expect("register body");
        assert_eq!(status, 201, "register failed: {body}");
        body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("an id")
    }

    /// `POST /v1/auth/login`, expecting 200.
    pub async fn login(&self, email: &str, password: &str) -> Tokens {
        let r = self
            .client
            .post(self.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login request");
        let status = r.status();
        let body: Value = r.json().await.expect("login body");
        assert_eq!(status, 200, "login failed: {body}");
        Tokens {
            access_token: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh_token: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}
