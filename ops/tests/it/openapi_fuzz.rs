//! The API keeps to its OpenAPI document, checked by a fuzzer.
//!
//! schemathesis (installed by `ops/scripts/install-services --with-test-tools`
//! into a virtual environment of its own; `ops/scripts/test` says where in
//! `BOXOFFICE_SCHEMATHESIS`) reads `/openapi.json` of a running app, with its
//! workers and the payment sandbox, and sends every documented operation valid
//! and invalid requests, a bounded number per operation: once without a token,
//! then with a participant's, an organizer's and an admin's. No answer may be a
//! 5xx, and every answer must have a documented status code, content type and
//! schema. A little data is seeded first (an event on sale with a paid booking,
//! a held checkout, a waitlist entry, a scheduled message) and its ids are
//! offered to the fuzzer for the path parameters, so requests reach real
//! resources and not only 404s.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use boxoffice_models::users::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::catalog_fixtures::{
    create_coupon, create_event, create_ticket_type, create_venue, expect, get_json, id_of,
    publish, send,
};
use crate::checkout_support::{awaiting_payment, is_finished, start, started_run, wait_for};
use crate::harness::TestApp;
use crate::harness::sandbox::TestSandbox;
use crate::harness::users::TestUser;

/// Test cases per operation and phase: enough to find what a shape of input
/// breaks, few enough that the runs take a few minutes on two cores.
/// `BOXOFFICE_FUZZ_MAX_EXAMPLES` raises it for a longer run by hand.
const MAX_EXAMPLES: u32 = 10;

/// What every answer is checked for.
const CHECKS: &str = "not_a_server_error,status_code_conformance,\
                      content_type_conformance,response_schema_conformance";

/// Logging out ends the session whose token the run sends: every later request
/// of that run would be a 401. It gets a run of its own, with a user of its own.
const LOGOUT: &str = "/v1/auth/logout";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_keeps_to_the_openapi_document() {
    let started = Instant::now();
    let app = TestApp::builder()
        .config(|c| {
            // One address and one user send thousands of requests a minute.
            c.rate_limits.per_ip_per_minute = 1_000_000;
            c.rate_limits.per_user_per_minute = 1_000_000;
            // The fuzzer fails logins by the hundred from that address; the
            // lockout would close it to the test's own sign-ins.
            c.rate_limits.ip_failures = 1_000_000;
        })
        .spawn()
        .await;
    let sandbox = app.sandbox().await;
    app.start_workers(&sandbox.base_url);
    let seeded = seed(&app, &sandbox).await;

    let dir = std::env::temp_dir().join(format!("boxoffice-fuzz-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a folder for the fuzzer");
    let document = get_json(&app, "/openapi.json").await;
    std::fs::write(dir.join("schemathesis.toml"), config(&document, &seeded))
        .expect("writing the fuzzer's configuration");

    let mut runs = Vec::new();
    let roles = [
        ("anonymous", None),
        ("participant", Some(&seeded.participant)),
        ("organizer", Some(&seeded.organizer)),
        ("logout", Some(&seeded.leaver)),
        // Last: the admin may disable every other user (it lists them, and
        // the fuzzer follows the ids it finds), but not itself.
        ("admin", Some(&seeded.admin)),
    ];
    for (role, user) in roles {
        // A fresh session per run: access tokens last 15 minutes.
        let token = match user {
            Some(user) => Some(app.login(&user.email, &user.password).await.access_token),
            None => None,
        };
        let operations = if role == "logout" {
            Operations::Logout
        } else {
            Operations::AllButLogout
        };
        runs.push(fuzz(&app, &dir, role, token.as_deref(), operations).await);
    }

    // Every documented operation must be tried: a document the fuzzer cannot
    // read whole would otherwise pass by testing little.
    let documented: u64 = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, |ops| ops.len() as u64))
        .sum();
    let logout: u64 = runs
        .iter()
        .filter(|r| r.role == "logout")
        .map(|r| r.tested)
        .sum();
    let others = runs
        .iter()
        .filter(|r| r.role != "logout")
        .map(|r| r.tested)
        .max();
    let operations = logout + others.unwrap_or(0);
    let generated: u64 = runs.iter().map(|r| r.generated).sum();
    let failed: Vec<&Run> = runs.iter().filter(|r| !r.passed()).collect();
    for run in &runs {
        println!("{}", run.summary());
    }
    println!(
        "schemathesis: {operations} of {documented} documented operations, {generated} test cases \
         in {} runs: {} ({:.0?} with seeding)",
        runs.len(),
        if failed.is_empty() { "pass" } else { "FAIL" },
        started.elapsed()
    );
    let answers = answers(&app).await;
    println!("{}", answers.summary(&document));
    for run in &failed {
        println!("--- schemathesis, {} ---\n{}", run.role, run.output);
    }
    assert!(failed.is_empty(), "schemathesis found failures (above)");
    assert_eq!(operations, documented, "operations tested");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the runs act on, and who.
struct Seeded {
    participant: TestUser,
    organizer: TestUser,
    admin: TestUser,
    /// Signs in only for the logout run.
    leaver: TestUser,
    venue: Uuid,
    /// The event on sale, then a draft (which may be deleted).
    events: Vec<Uuid>,
    ticket_types: Vec<Uuid>,
    coupon: Uuid,
    coupon_code: String,
    booking: Uuid,
    tickets: Vec<Uuid>,
    qr_payloads: Vec<String>,
    runs: Vec<Uuid>,
    waitlist_entry: Uuid,
    message: Uuid,
    notifications: Vec<Uuid>,
    /// The buyers, whom the admin may disable.
    buyers: Vec<Uuid>,
}

/// An organizer's published event with two ticket types and a coupon: a
/// participant paid for two tickets, another buyer holds the only seat of the
/// second type, and the participant waits for it; a message to the holders
/// is scheduled. And a draft event.
async fn seed(app: &TestApp, sandbox: &TestSandbox) -> Seeded {
    let organizer = app.create_user(&[Role::Organizer]).await;
    let participant = app.create_user(&[]).await;
    let buyer = app.create_user(&[]).await;
    let admin = app.create_user(&[Role::Admin]).await;
    let leaver = app.create_user(&[]).await;

    let venue = id_of(&create_venue(app, &organizer, "Berlin").await);
    let event = id_of(
        &create_event(
            app,
            &organizer,
            json!({"online": false, "venue_id": venue, "waitlist_enabled": true,
                   "refundable_until_hours_before": 24}),
        )
        .await,
    );
    let general = id_of(&create_ticket_type(app, &organizer, event, json!({})).await);
    let front_row = id_of(
        &create_ticket_type(
            app,
            &organizer,
            event,
            json!({"name": "Front row", "capacity": 1}),
        )
        .await,
    );
    let coupon = create_coupon(app, &organizer, event, json!({})).await;
    publish(app, &organizer, event).await;
    let draft = id_of(&create_event(app, &organizer, json!({"title": "Not yet"})).await);

    let order = |ticket_type: Uuid, quantity: i32| {
        let item = json!({"ticket_type_id": ticket_type, "quantity": quantity});
        json!({"event_id": event, "items": [item]})
    };
    let within = Duration::from_secs(30);
    let buy = |user: &TestUser, ticket_type: Uuid, quantity: i32| {
        let body = order(ticket_type, quantity);
        let user = user.clone();
        async move { started_run(start(&app.base_url, &app.client, &user, body, None).await).await }
    };
    let paid = buy(&participant, general, 2).await;
    let view = wait_for(app, &participant, &paid, within, awaiting_payment).await;
    sandbox
        .pay(view["payment"]["intent_id"].as_str().expect("an intent"))
        .await;
    let view = wait_for(app, &participant, &paid, within, is_finished).await;
    assert_eq!(view["status"], "completed", "{view}");
    let booking: Uuid = view["booking_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a booking");
    let tickets = get(
        app,
        &participant,
        &format!("/v1/bookings/{booking}/tickets"),
    )
    .await;
    let tickets = tickets.as_array().expect("tickets");

    let held = buy(&buyer, front_row, 1).await;
    wait_for(app, &buyer, &held, within, awaiting_payment).await;
    let entry = expect(
        send(
            app,
            Method::POST,
            &format!("/v1/events/{event}/waitlist"),
            Some(&participant),
            Some(json!({"ticket_type_id": front_row, "quantity": 1})),
        )
        .await,
        201,
    )
    .await;

    let message = app
        .client
        .post(app.url(&format!("/v1/events/{event}/messages")))
        .header("authorization", organizer.bearer())
        .header("idempotency-key", Uuid::new_v4().to_string())
        .json(
            &json!({"subject": "Doors open at 19:00", "body": "See you there.",
                      "send_at": chrono::Utc::now() + chrono::Duration::days(7)}),
        )
        .send()
        .await
        .expect("request sent");
    let message = id_of(&expect(message, 201).await);
    let notifications = get(app, &participant, "/v1/me/notifications").await;

    Seeded {
        buyers: vec![participant.id, buyer.id],
        participant,
        organizer,
        admin,
        leaver,
        venue,
        events: vec![event, draft],
        ticket_types: vec![general, front_row],
        coupon: id_of(&coupon),
        coupon_code: coupon["code"].as_str().expect("a code").to_owned(),
        booking,
        tickets: tickets.iter().map(id_of).collect(),
        qr_payloads: tickets
            .iter()
            .filter_map(|t| Some(t["qr_payload"].as_str()?.to_owned()))
            .collect(),
        runs: [paid, held]
            .iter()
            .map(|run| run.parse().expect("a run id"))
            .collect(),
        waitlist_entry: id_of(&entry),
        message,
        notifications: notifications["items"]
            .as_array()
            .map(|items| items.iter().map(id_of).collect())
            .unwrap_or_default(),
    }
}

async fn get(app: &TestApp, user: &TestUser, path: &str) -> Value {
    expect(send(app, Method::GET, path, Some(user), None).await, 200).await
}

/// The fuzzer's configuration: what was seeded, as dictionaries the fuzzer
/// draws parameters from (with a given probability; it generates its own
/// otherwise), so requests reach real resources and not only 404s. Each path
/// parameter draws from the resources its path names, or from every seeded id
/// when the table below does not know it.
fn config(document: &Value, seeded: &Seeded) -> String {
    let ids = |ids: &[Uuid]| ids.iter().map(Uuid::to_string).collect::<Vec<_>>();
    let everything = [
        &[
            seeded.venue,
            seeded.coupon,
            seeded.booking,
            seeded.waitlist_entry,
            seeded.message,
        ][..],
        &seeded.events,
        &seeded.ticket_types,
        &seeded.tickets,
        &seeded.runs,
        &seeded.notifications,
        &seeded.buyers,
    ]
    .concat();
    let dictionaries: Vec<(&str, Vec<String>)> = vec![
        ("everything", ids(&everything)),
        ("venues", ids(&[seeded.venue])),
        ("events", ids(&seeded.events)),
        ("ticket_types", ids(&seeded.ticket_types)),
        ("coupons", ids(&[seeded.coupon])),
        ("bookings", ids(&[seeded.booking])),
        ("runs", ids(&seeded.runs)),
        ("waitlist", ids(&[seeded.waitlist_entry])),
        ("messages", ids(&[seeded.message])),
        ("notifications", ids(&seeded.notifications)),
        ("users", ids(&seeded.buyers)),
        ("coupon_codes", vec![seeded.coupon_code.clone()]),
        ("qr_payloads", seeded.qr_payloads.clone()),
        // Any version: updates get past the precondition to the handler.
        ("any_version", vec!["*".to_owned()]),
    ];
    // (operations whose path matches, parameter, dictionary, probability)
    let bindings: &[(&str, &str, &str, f64)] = &[
        (r"^/v1/venues/", "path.id", "venues", 0.8),
        (r"^/v1/(organizer/)?events/", "path.id", "events", 0.8),
        (r"^/v1/events/", "path.ticket_type_id", "ticket_types", 0.8),
        (r"^/v1/events/", "path.coupon_id", "coupons", 0.8),
        (r"^/v1/events/", "path.message_id", "messages", 0.8),
        (r"^/v1/events/", "path.entry_id", "waitlist", 0.8),
        (r"^/v1/waitlist/", "path.entry_id", "waitlist", 0.8),
        (r"^/v1/bookings/", "path.id", "bookings", 0.8),
        (r"^/v1/checkouts/", "path.run_id", "runs", 0.8),
        (r"^/v1/(workflows|ops/runs)/", "path.id", "runs", 0.8),
        (r"^/v1/me/notifications/", "path.id", "notifications", 0.8),
        (r"^/v1/admin/users/", "path.id", "users", 0.8),
    ];
    // Parameters of any operation.
    let mut everywhere: Vec<(String, &str, f64)> = path_parameters(document)
        .into_iter()
        .map(|name| (format!("path.{name}"), "everything", 0.5))
        .collect();
    everywhere.extend(
        [
            ("header.If-Match", "any_version", 0.5),
            ("query.event_id", "events", 0.5),
            ("body.event_id", "events", 0.8),
            ("body.ticket_type_id", "ticket_types", 0.8),
            ("body.items[*].ticket_type_id", "ticket_types", 0.8),
            ("body.code", "coupon_codes", 0.5),
            ("body.qr_payload", "qr_payloads", 0.8),
        ]
        .map(|(key, dictionary, probability)| (key.to_owned(), dictionary, probability)),
    );

    let usable = |name: &str| {
        dictionaries
            .iter()
            .any(|(n, values)| *n == name && !values.is_empty())
    };
    let mut toml = String::from("# Written by ops/tests/it/openapi_fuzz.rs for one run.\n");
    // The run without a token stays without one: schemathesis would otherwise
    // register a user and sign in through the API's own operations.
    toml.push_str("[auth]\nauto-signup = false\n");
    for (name, values) in &dictionaries {
        if values.is_empty() {
            continue;
        }
        let values: Vec<String> = values.iter().map(|v| toml_string(v)).collect();
        writeln!(
            toml,
            "\n[dictionaries.{name}]\nvalues = [{}]",
            values.join(", ")
        )
        .unwrap();
    }
    toml.push_str("\n[parameters]\n");
    for (key, dictionary, probability) in everywhere.iter().filter(|b| usable(b.1)) {
        writeln!(
            toml,
            "{} = {{ dictionary = \"{dictionary}\", probability = {probability} }}",
            toml_string(key)
        )
        .unwrap();
    }
    for (path, key, dictionary, probability) in bindings.iter().filter(|b| usable(b.2)) {
        writeln!(
            toml,
            "\n[[operations]]\ninclude-path-regex = {}\nparameters = {{ {} = {{ dictionary = \"{dictionary}\", probability = {probability} }} }}",
            toml_string(path),
            toml_string(key)
        )
        .unwrap();
    }
    toml
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    serde_json::to_string(value).expect("a string serialises")
}

/// The names of every path parameter in the document.
fn path_parameters(document: &Value) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for item in document["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().into_iter().flat_map(|ops| ops.values()) {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "path"
                    && let Some(name) = parameter["name"].as_str()
                {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    names
}

enum Operations {
    AllButLogout,
    Logout,
}

/// One schemathesis run, as its JSON report tells it.
struct Run {
    role: &'static str,
    exit_code: i64,
    selected: u64,
    tested: u64,
    generated: u64,
    with_failures: u64,
    errored: u64,
    failures: Vec<Value>,
    errors: Vec<Value>,
    seed: String,
    elapsed: Duration,
    /// What schemathesis printed: the failures, each with a curl command.
    output: String,
}

impl Run {
    fn passed(&self) -> bool {
        self.exit_code == 0
            && self.with_failures == 0
            && self.errored == 0
            && self.failures.is_empty()
            && self.errors.is_empty()
            && self.tested > 0
    }

    fn summary(&self) -> String {
        format!(
            "schemathesis {}: {} of {} operations tested, {} test cases, {} with failures, \
             {} errors (seed {}, {:.1?}): {}",
            self.role,
            self.tested,
            self.selected,
            self.generated,
            self.with_failures,
            self.errored + self.errors.len() as u64,
            self.seed,
            self.elapsed,
            if self.passed() { "pass" } else { "FAIL" }
        )
    }
}

/// Where install-services put schemathesis.
fn schemathesis() -> PathBuf {
    std::env::var_os("BOXOFFICE_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/boxoffice-schemathesis-venv/bin/schemathesis")
        })
}

async fn fuzz(
    app: &TestApp,
    dir: &Path,
    role: &'static str,
    token: Option<&str>,
    operations: Operations,
) -> Run {
    let program = schemathesis();
    assert!(
        program.exists(),
        "{} is missing: run the tests with ops/scripts/test, which installs it",
        program.display()
    );
    let report = dir.join(format!("{role}.json"));
    let max_examples = std::env::var("BOXOFFICE_FUZZ_MAX_EXAMPLES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(MAX_EXAMPLES);
    let mut command = tokio::process::Command::new(&program);
    command
        .current_dir(dir)
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["--checks", CHECKS])
        .arg(format!("--max-examples={max_examples}"))
        // One worker: its Python and the app under test take a core each.
        // (Two threads also trip a CPython 3.11 bug in the generator's
        // source parsing, "AST constructor recursion depth mismatch".)
        .args(["--workers", "1"])
        // Long polls answer within 30 s.
        .args(["--request-timeout", "45"])
        // How fast the generator draws data depends on the machine's load,
        // not on the API.
        .args(["--suppress-health-check", "too_slow"])
        // Nothing kept between runs: each run stands on its own.
        .args(["--generation-database", "none"])
        .args(["--report", "json"])
        .arg("--report-json-path")
        .arg(&report)
        .arg("--no-color")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    // A failure found by a random run is replayed with its seed.
    if let Ok(seed) = std::env::var("BOXOFFICE_FUZZ_SEED") {
        command.args(["--seed", &seed]);
    }
    if let Some(token) = token {
        command.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    match operations {
        Operations::AllButLogout => command.args(["--exclude-path", LOGOUT]),
        Operations::Logout => command.args(["--include-path", LOGOUT]),
    };
    let started = Instant::now();
    let output = command.output().await.unwrap_or_else(|e| {
        panic!("starting {}: {e}", program.display());
    });
    let elapsed = started.elapsed();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|_| panic!("schemathesis ({role}) wrote no report:\n{printed}"));
    let report: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("schemathesis ({role}) report ({e}):\n{text}"));
    let number = |v: &Value| v.as_u64().unwrap_or(0);
    Run {
        role,
        exit_code: report["exit_code"].as_i64().unwrap_or(-1),
        selected: number(&report["operations"]["selected"]),
        tested: number(&report["operations"]["tested"]),
        generated: number(&report["test_cases"]["generated"]),
        with_failures: number(&report["test_cases"]["with_failures"]),
        errored: number(&report["test_cases"]["errored"])
            + number(&report["operations"]["errored"]),
        failures: report["failures"].as_array().cloned().unwrap_or_default(),
        errors: report["errors"].as_array().cloned().unwrap_or_default(),
        seed: seed_of(&text),
        elapsed,
        output: printed,
    }
}

/// The seed as written (a 128-bit integer: more than a JSON number read as
/// `f64` keeps), to replay the run with `BOXOFFICE_FUZZ_SEED`.
fn seed_of(report: &str) -> String {
    report
        .split_once("\"seed\":")
        .map(|(_, rest)| {
            rest.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect()
        })
        .filter(|seed: &String| !seed.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// What the app answered, per operation, from its own request counter.
struct Answers(std::collections::BTreeMap<(String, String), Vec<(u16, u64)>>);

async fn answers(app: &TestApp) -> Answers {
    let text = app.metrics().await;
    let mut counted = std::collections::BTreeMap::<_, Vec<(u16, u64)>>::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("http_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let (Ok(status), Ok(count)) = (label("status").parse(), value.trim().parse::<f64>()) else {
            continue;
        };
        counted
            .entry((label("method").to_lowercase(), label("route")))
            .or_default()
            .push((status, count as u64));
    }
    Answers(counted)
}

impl Answers {
    /// How many answers were successes, and which documented operations
    /// never answered with one (an id the fuzzer could not find, a state the
    /// seed does not reach): where the runs tested only refusals.
    fn summary(&self, document: &Value) -> String {
        let mut total = 0;
        let mut successes = 0;
        for statuses in self.0.values() {
            for (status, count) in statuses {
                total += count;
                if (200..300).contains(status) || *status == 304 {
                    successes += count;
                }
            }
        }
        let mut never = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for method in item.as_object().into_iter().flat_map(|ops| ops.keys()) {
                let succeeded = self
                    .0
                    .get(&(method.clone(), path.clone()))
                    .is_some_and(|s| {
                        s.iter()
                            .any(|(status, _)| (200..300).contains(status) || *status == 304)
                    });
                if !succeeded {
                    never.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
        format!(
            "answers: {total}, of which {successes} successes; {} operations never succeeded: {}",
            never.len(),
            never.join(", ")
        )
    }
}
