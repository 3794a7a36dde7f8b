//! The email templates (minijinja), one HTML and one text layout for every
//! kind: what differs between kinds is the data ([`EmailView`]), not the
//! layout. Auto-escaping follows the template's name: on for `email.html`,
//! so an organizer's text or an event title can never inject markup; off for
//! `email.txt`.

use std::sync::LazyLock;

use minijinja::Environment;
use serde::Serialize;

use super::when::LocalTimes;

/// Everything a template may show.
#[derive(Debug, Clone, Serialize)]
pub struct EmailView {
    pub subject: String,
    /// The notification's own text, as its workflow wrote it.
    pub body_text: String,
    /// The same, split at blank lines, for HTML paragraphs.
    pub paragraphs: Vec<String>,
    pub event: Option<EventView>,
    pub tickets: Vec<TicketView>,
    /// A waitlist offer's deadline in the event's zone.
    pub offer_expires: Option<String>,
    /// Whether a calendar file is attached.
    pub calendar: bool,
    /// The notification's text already says when and where (the
    /// confirmation's does, for the notifications list): the text part does
    /// not repeat it. The HTML part always shows its event card.
    pub text_has_event: bool,
    /// The notification's text already lists every ticket number.
    pub text_has_tickets: bool,
    pub unsubscribe: Option<UnsubscribeView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub title: String,
    #[serde(flatten)]
    pub times: LocalTimes,
    pub venue_name: Option<String>,
    pub venue_address: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TicketView {
    pub number: String,
    pub type_name: String,
    /// The `Content-ID` of its inline QR image.
    pub cid: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnsubscribeView {
    /// `reminders`, `messages from organizers`.
    pub list: &'static str,
    pub url: String,
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.add_template("email.html", include_str!("templates/email.html"))
        .expect("email.html parses");
    env.add_template("email.txt", include_str!("templates/email.txt"))
        .expect("email.txt parses");
    env
});

/// The HTML and the text part of `view`.
pub fn render(view: &EmailView) -> Result<(String, String), minijinja::Error> {
    let html = TEMPLATES
        .get_template("email.html")?
        .render(minijinja::value::Serde(view))?;
    let text = TEMPLATES
        .get_template("email.txt")?
        .render(minijinja::value::Serde(view))?;
    Ok((html, text))
}

/// Splits text at blank lines; single newlines stay inside a paragraph (the
/// HTML keeps them with `white-space: pre-line`).
pub fn paragraphs(text: &str) -> Vec<String> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(body: &str) -> EmailView {
        EmailView {
            subject: "A <b>word</b> from the organizer".into(),
            body_text: body.into(),
            paragraphs: paragraphs(body),
            event: None,
            tickets: Vec::new(),
            offer_expires: None,
            calendar: false,
            text_has_event: false,
            text_has_tickets: false,
            unsubscribe: None,
        }
    }

    #[test]
    fn html_escapes_what_people_wrote_and_text_keeps_it() {
        let body = "Doors open at 19:00.\n\n<script>alert('x')</script> & <a href=\"https://evil.example\">prizes</a>";
        let (html, text) = render(&view(body)).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            !html.contains("<a href=\"https://evil.example\">"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("A &lt;b&gt;word&lt;"), "{html}");
        assert!(text.contains(body), "{text}");
    }
}
