//! Who is calling, by address: the socket peer, or, behind trusted proxies,
//! the address the outermost trusted proxy saw.
//!
//! Each proxy appends the address it received the request from to
//! `X-Forwarded-For`, so the header reads `whatever the client wrote, …,
//! client, proxy 1, …, proxy N-1` when it reaches us from proxy N. Only the
//! last `N` entries were written by proxies we trust; everything to their left
//! is the client's to invent. With `trusted_proxies = N` the client is the
//! `N`-th entry from the right.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderName};

use crate::config::ApiConfig;
use crate::state::AppState;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address. `None` when it is unknown (an in-process request
/// without connection info).
pub fn client_ip(
    headers: &HeaderMap,
    extensions: &Extensions,
    config: &ApiConfig,
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if config.trusted_proxies == 0 {
        return peer;
    }
    forwarded_client(headers, config.trusted_proxies).or(peer)
}

/// The `trusted`-th entry from the right of every `X-Forwarded-For` line
/// (several lines read as one list, in order). A shorter list means the
/// request entered behind the outermost proxy: its leftmost entry is then the
/// farthest address a trusted proxy saw. `None` when the header is missing or
/// that entry is not an address.
fn forwarded_client(headers: &HeaderMap, trusted: u32) -> Option<IpAddr> {
    let mut hops: Vec<&str> = Vec::new();
    for line in headers.get_all(&X_FORWARDED_FOR) {
        let line = line.to_str().ok()?;
        hops.extend(line.split(',').map(str::trim).filter(|h| !h.is_empty()));
    }
    let trusted = usize::try_from(trusted).unwrap_or(usize::MAX);
    let index = hops.len().saturating_sub(trusted);
    parse_hop(hops.get(index)?)
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    hop.parse::<SocketAddr>().ok().map(|addr| addr.ip())
}

/// Extractor for [`client_ip`]; never fails.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(
            &parts.headers,
            &parts.extensions,
            &state.config,
        )))
    }
}

/// The part of an address one client controls: an IPv4 address, or an IPv6 /64
/// (a single host is usually handed a whole /64, so counting single IPv6
/// addresses would let one client rotate through billions of them).
pub fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use axum::http::HeaderValue;

    use super::*;

    fn config(trusted_proxies: u32) -> ApiConfig {
        let mut c = ApiConfig::for_development(vec![0; 32], "test");
        c.trusted_proxies = trusted_proxies;
        c
    }

    fn peer(ip: &str) -> Extensions {
        let mut e = Extensions::new();
        e.insert(ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 4000)));
        e
    }

    fn forwarded(lines: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append(&X_FORWARDED_FOR, HeaderValue::from_static(line));
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let h = forwarded(&["203.0.113.9"]);
        assert_eq!(client_ip(&h, &peer("10.0.0.1"), &config(0)), ip("10.0.0.1"));
    }

    #[test]
    fn the_client_is_the_address_the_outermost_trusted_proxy_saw() {
        // The client wrote 198.51.100.66 itself; proxy 1 appended 203.0.113.9.
        let h = forwarded(&["198.51.100.66, 203.0.113.9"]);
        assert_eq!(
            client_ip(&h, &peer("10.0.0.1"), &config(1)),
            ip("203.0.113.9")
        );
        // Two proxies: the outer one saw the client, the inner one the outer.
        let h = forwarded(&["198.51.100.66, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(
            client_ip(&h, &peer("10.0.0.1"), &config(2)),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(&h, &peer("10.0.0.1"), &config(1)), ip("10.0.0.2"));
    }

    #[test]
    fn a_short_list_gives_its_leftmost_entry() {
        let h = forwarded(&["203.0.113.9"]);
        assert_eq!(
            client_ip(&h, &peer("10.0.0.1"), &config(3)),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ports_and_brackets_are_understood() {
        let h = forwarded(&["203.0.113.9:4711"]);
        assert_eq!(
            client_ip(&h, &peer("10.0.0.1"), &config(1)),
            ip("203.0.113.9")
        );
        let h = forwarded(&["[2001:db8::7]:4711"]);
        assert_eq!(
            client_ip(&h, &peer("10.0.0.1"), &config(1)),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn a_garbled_or_missing_header_falls_back_to_the_peer() {
        let h = forwarded(&["not an ip"]);
        assert_eq!(client_ip(&h, &peer("10.0.0.2"), &config(1)), ip("10.0.0.2"));
        assert_eq!(
            client_ip(&HeaderMap::new(), &peer("10.0.0.2"), &config(1)),
            ip("10.0.0.2")
        );
        assert_eq!(client_ip(&h, &Extensions::new(), &config(0)), None);
    }

    #[test]
    fn ipv6_clients_are_bucketed_by_64_bit_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(ip_bucket(a), ip_bucket(b));
        assert_eq!(ip_bucket(a), "2001:db8:1:2::/64");
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(ip_bucket(mapped), "192.0.2.1");
        assert_ne!(ip_bucket(IpAddr::V6(Ipv6Addr::LOCALHOST)), ip_bucket(a));
    }
}
