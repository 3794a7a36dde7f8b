//! How the benchmark's buyers reach the system: each on an HTTP/1.1
//! connection of its own, as browsers that reach `serve` directly, or as
//! streams of a few cleartext HTTP/2 connections, as a proxy that speaks
//! HTTP/2 upstream carries them.

use std::time::Duration;

/// Buyers sharing one HTTP/2 connection, as a proxy would multiplex them;
/// half the streams a `serve` process allows on a connection (hyper's 200).
const BUYERS_PER_HTTP2_CONNECTION: usize = 100;

/// One buyer's ways in: to the API, and to the sandbox to pay.
pub struct BuyerClients {
    pub api: reqwest::Client,
    pub sandbox: reqwest::Client,
}

/// How the buyers reach the system.
pub struct Clients {
    /// Buyer `i` talks to the API through `api[i % api.len()]`.
    api: Vec<reqwest::Client>,
    /// The payment sandbox: the provider, not behind the API's proxy.
    sandbox: reqwest::Client,
    http2: bool,
}

impl Clients {
    /// Each buyer on its own HTTP/1.1 connection, as browsers that reach
    /// `serve` directly; or, with `http2`, buyers multiplexed over one
    /// cleartext HTTP/2 connection per hundred of them, as a proxy that
    /// speaks HTTP/2 upstream would carry them.
    pub fn new(buyers: usize, http2: bool) -> reqwest::Result<Self> {
        let builder = || {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(45))
                .connect_timeout(Duration::from_secs(5))
        };
        let sandbox = builder().build()?;
        let api = if http2 {
            // One `reqwest::Client` keeps one HTTP/2 connection to a host.
            (0..buyers.div_ceil(BUYERS_PER_HTTP2_CONNECTION).max(1))
                .map(|_| builder().http2_prior_knowledge().build())
                .collect::<reqwest::Result<_>>()?
        } else {
            vec![sandbox.clone()]
        };
        Ok(Clients {
            api,
            sandbox,
            http2,
        })
    }

    fn api(&self, i: usize) -> &reqwest::Client {
        &self.api[i % self.api.len()]
    }

    /// Buyer `i`'s ways in (clones share their connections).
    pub fn for_buyer(&self, i: usize) -> BuyerClients {
        BuyerClients {
            api: self.api(i).clone(),
            sandbox: self.sandbox.clone(),
        }
    }

    /// What the start of the sale prints.
    pub fn describe(&self) -> String {
        if self.http2 {
            let n = self.api.len();
            let s = if n == 1 { "" } else { "s" };
            format!("buyers over {n} HTTP/2 connection{s} to each API")
        } else {
            "each buyer on its own HTTP/1.1 connection".to_owned()
        }
    }

    /// For the reads after the sale.
    pub fn first(&self) -> &reqwest::Client {
        self.api(0)
    }
}
