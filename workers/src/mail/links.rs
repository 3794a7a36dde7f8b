//! Links in emails: where Boxoffice's API is reached from a mail client, and
//! the signed one-click unsubscribe link (RFC 8058) of reminders and
//! organizer messages.

use boxoffice_models::unsubscribe::{self, MailingList};
use uuid::Uuid;

/// What links in emails are built from.
#[derive(Clone)]
pub struct LinkSettings {
    /// The API's public base URL (`BOXOFFICE_PUBLIC_URL`), e.g.
    /// `https://tickets.example.com`.
    pub public_url: String,
    /// Signs unsubscribe tokens; the API verifies them with the same secret.
    pub unsubscribe_secret: Vec<u8>,
}

/// Without the secret.
impl std::fmt::Debug for LinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSettings")
            .field("public_url", &self.public_url)
            .field("unsubscribe_secret", &"<redacted>")
            .finish()
    }
}

impl LinkSettings {
    /// `POST` (one click, RFC 8058) or `GET` (a confirmation page) this URL
    /// to leave `list`; it works without signing in.
    pub fn unsubscribe_url(&self, user_id: Uuid, list: MailingList) -> String {
        let token = unsubscribe::sign(&self.unsubscribe_secret, user_id, list);
        // A JWT is base64url and dots: nothing to percent-encode.
        format!(
            "{}/v1/unsubscribe?token={token}",
            self.public_url.trim_end_matches('/')
        )
    }

    /// The host of the public URL, for globally unique ids (calendar UIDs).
    pub fn domain(&self) -> &str {
        let rest = self
            .public_url
            .split_once("://")
            .map_or(self.public_url.as_str(), |(_, rest)| rest);
        let host = rest.split(['/', ':', '?']).next().unwrap_or_default();
        if host.is_empty() { "boxoffice" } else { host }
    }
}

/// What a list is called in the email's footer.
pub fn list_label(list: MailingList) -> &'static str {
    match list {
        MailingList::Reminders => "event reminders",
        MailingList::Messages => "messages from organizers",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_carries_a_token_the_api_accepts() {
        let links = LinkSettings {
            public_url: "https://tickets.example.com/".into(),
            unsubscribe_secret: b"secret-for-links-0123456789abcdef".to_vec(),
        };
        let user = Uuid::new_v4();
        let url = links.unsubscribe_url(user, MailingList::Reminders);
        let token = url
            .strip_prefix("https://tickets.example.com/v1/unsubscribe?token=")
            .expect(&url);
        let verified = unsubscribe::verify(&links.unsubscribe_secret, token).unwrap();
        assert_eq!(verified.user_id, user);
        assert_eq!(verified.list, MailingList::Reminders);
        assert_eq!(links.domain(), "tickets.example.com");
    }
}
