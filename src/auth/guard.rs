//! Abuse limits at the edges: the client's address (behind trusted proxies), sockets per address, new chats per address per minute, and login attempts.
//!
//! A prankster's script must not push real callers out of the queue, and a password guesser must
//! not get more than a few tries a minute. Limits are per *network* address: an IPv4 address, or
//! the /64 prefix of an IPv6 address (one home or phone gets a whole /64). Many real callers can
//! share one address (a school, a carrier's NAT), so the defaults are generous and every limit is
//! configurable; what is refused gets a calm, clear answer, never a silent drop.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Default limits (see [`GuardSettings`]).
pub const SOCKETS_PER_IP: u32 = 200;
pub const CONTACTS_PER_IP_PER_MIN: u32 = 10;
pub const LOGINS_PER_IP_PER_MIN: u32 = 120;
pub const LOGINS_PER_ACCOUNT_PER_MIN: u32 = 5;

/// The edge limits, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSettings {
    /// Proxies (load balancers) whose `X-Forwarded-For` is believed. Empty: the peer address is the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// Open WebSockets per client network at most (0: no limit).
    pub sockets_per_ip: u32,
    /// New chats a client network may start per minute (0: no limit).
    pub contacts_per_ip_per_min: u32,
    /// Login attempts per client network per minute (0: no limit).
    pub logins_per_ip_per_min: u32,
    /// Failed logins per account name per minute, from anywhere, before the name is locked for a while (0: no limit).
    pub logins_per_account_per_min: u32,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            trusted_proxies: Vec::new(),
            sockets_per_ip: SOCKETS_PER_IP,
            contacts_per_ip_per_min: CONTACTS_PER_IP_PER_MIN,
            logins_per_ip_per_min: LOGINS_PER_IP_PER_MIN,
            logins_per_account_per_min: LOGINS_PER_ACCOUNT_PER_MIN,
        }
    }
}

/// What a refused request was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Sockets,
    Contacts,
    Logins,
}

/// The shared state of the limits.
pub struct Guard {
    settings: GuardSettings,
    sockets: Arc<Mutex<HashMap<IpAddr, u32>>>,
    contacts: Option<DefaultKeyedRateLimiter<IpAddr>>,
    logins_by_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    logins_by_account: Option<DefaultKeyedRateLimiter<String>>,
    /// Account names locked after too many failed logins, until when.
    locked_accounts: Mutex<HashMap<String, std::time::Instant>>,
}

/// Held while a socket is open; gives its place back when dropped.
#[derive(Debug)]
pub struct SocketSlot {
    ip: IpAddr,
    sockets: Option<Arc<Mutex<HashMap<IpAddr, u32>>>>,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let Some(sockets) = &self.sockets else { return };
        if let Ok(mut map) = sockets.lock() {
            if let Some(n) = map.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

fn per_minute<K: std::hash::Hash + Eq + Clone>(n: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n).allow_burst(n)))
}

impl Guard {
    pub fn new(settings: GuardSettings) -> Guard {
        Guard {
            contacts: per_minute(settings.contacts_per_ip_per_min),
            logins_by_ip: per_minute(settings.logins_per_ip_per_min),
            logins_by_account: per_minute(settings.logins_per_account_per_min),
            sockets: Arc::default(),
            locked_accounts: Mutex::default(),
            settings,
        }
    }

    /// The client's network: the peer address, or, when the peer is a trusted proxy, the last
    /// `X-Forwarded-For` hop that is not one of our proxies. IPv6 is cut to its /64.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        network(self.client_addr(peer, headers))
    }

    /// The client's own address (not cut to its network): for the audit log of staff actions.
    pub fn client_addr(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer_ip = canonical(peer.ip());
        if !self.settings.trusted_proxies.iter().any(|p| canonical(*p) == peer_ip) {
            return peer_ip;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        hops.iter()
            .rev()
            .find(|hop| !self.settings.trusted_proxies.iter().any(|p| canonical(*p) == **hop))
            .copied()
            .unwrap_or(peer_ip)
    }

    /// A place for one more socket from `ip`, or `Err(Over::Sockets)` when it has too many open.
    pub fn open_socket(&self, ip: IpAddr) -> Result<SocketSlot, Over> {
        if self.settings.sockets_per_ip == 0 {
            return Ok(SocketSlot { ip, sockets: None });
        }
        let mut map = self.sockets.lock().map_err(|_| Over::Sockets)?;
        let n = map.entry(ip).or_insert(0);
        if *n >= self.settings.sockets_per_ip {
            return Err(Over::Sockets);
        }
        *n += 1;
        Ok(SocketSlot { ip, sockets: Some(self.sockets.clone()) })
    }

    /// Open sockets from `ip` now.
    pub fn sockets_open(&self, ip: IpAddr) -> u32 {
        self.sockets.lock().map(|m| m.get(&ip).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// Counts a new chat from `ip`; `Err(Over::Contacts)` when the network started too many this minute.
    pub fn new_contact(&self, ip: IpAddr) -> Result<(), Over> {
        match &self.contacts {
            Some(limiter) => limiter.check_key(&ip).map_err(|_| Over::Contacts),
            None => Ok(()),
        }
    }

    /// Counts a login attempt from `ip` for `account`: `Err(Over::Logins)` when the address is over its
    /// rate, or the account name is locked after too many failed attempts.
    pub fn login_attempt(&self, ip: IpAddr, account: &str) -> Result<(), Over> {
        if let Some(limiter) = &self.logins_by_ip {
            limiter.check_key(&ip).map_err(|_| Over::Logins)?;
        }
        let locked = self.locked_accounts.lock().map(|m| m.get(&account_key(account)).copied()).unwrap_or(None);
        match locked {
            Some(until) if until > std::time::Instant::now() => Err(Over::Logins),
            _ => Ok(()),
        }
    }

    /// Counts a failed login for `account`; past `logins_per_account_per_min` failures the name is
    /// locked until its quota refills (a counsellor who mistypes twice is not locked out).
    pub fn login_failed(&self, account: &str) {
        let Some(limiter) = &self.logins_by_account else { return };
        let key = account_key(account);
        if let Err(not_until) = limiter.check_key(&key) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
            if let Ok(mut map) = self.locked_accounts.lock() {
                map.insert(key, std::time::Instant::now() + wait.max(std::time::Duration::from_secs(1)));
            }
        }
    }

    /// Forgets rate-limit state that has fully refilled (called every minute, so the maps stay small under a flood).
    pub fn forget_idle(&self) {
        for limiter in [&self.contacts, &self.logins_by_ip].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.logins_by_account {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Ok(mut map) = self.locked_accounts.lock() {
            let now = std::time::Instant::now();
            map.retain(|_, until| *until > now);
        }
    }
}

/// Account names are compared case-insensitively, without surrounding blanks.
fn account_key(account: &str) -> String {
    account.trim().to_lowercase()
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The unit limits apply to: an IPv4 address, or an IPv6 /64.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard(trusted: &[&str]) -> Guard {
        Guard::new(GuardSettings {
            trusted_proxies: trusted.iter().filter_map(|p| p.parse().ok()).collect(),
            sockets_per_ip: 2,
            contacts_per_ip_per_min: 3,
            logins_per_ip_per_min: 10,
            logins_per_account_per_min: 2,
        })
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().expect("ip"), 40000)
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let g = guard(&["10.0.0.1"]);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.1"));
        assert_eq!(g.client_ip(peer("10.0.0.1"), &headers), "203.0.113.7".parse::<IpAddr>().unwrap());
        // From anyone else the header is the client's own claim: ignored.
        assert_eq!(g.client_ip(peer("198.51.100.9"), &headers), "198.51.100.9".parse::<IpAddr>().unwrap());
        // Garbage in the header: the proxy itself.
        headers.insert("x-forwarded-for", HeaderValue::from_static("not an ip"));
        assert_eq!(g.client_ip(peer("10.0.0.1"), &headers), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let g = guard(&[]);
        let a = g.client_ip(peer("2001:db8:1:2:aaaa::1"), &HeaderMap::new());
        let b = g.client_ip(peer("2001:db8:1:2:bbbb::2"), &HeaderMap::new());
        assert_eq!(a, b);
        let mapped = g.client_ip(peer("::ffff:192.0.2.1"), &HeaderMap::new());
        assert_eq!(mapped, "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn sockets_are_capped_and_given_back() {
        let g = guard(&[]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let one = g.open_socket(ip).expect("first");
        let _two = g.open_socket(ip).expect("second");
        assert_eq!(g.open_socket(ip).unwrap_err(), Over::Sockets);
        assert!(g.open_socket("192.0.2.2".parse().unwrap()).is_ok(), "another network is not affected");
        drop(one);
        assert_eq!(g.sockets_open(ip), 1);
        assert!(g.open_socket(ip).is_ok());
    }

    #[test]
    fn contacts_and_logins_are_rate_limited_per_key() {
        let g = guard(&[]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            g.new_contact(ip).expect("within the quota");
        }
        assert_eq!(g.new_contact(ip).unwrap_err(), Over::Contacts);
        assert!(g.new_contact("192.0.2.9".parse().unwrap()).is_ok());
        // Successful logins do not count against the account; failures do, from any address, in any case.
        for _ in 0..5 {
            g.login_attempt(ip, "ana").expect("no failures yet");
        }
        g.login_failed("ana");
        g.login_failed("ANA ");
        g.login_attempt("192.0.2.3".parse().unwrap(), "ana").expect("two failures are within the quota");
        g.login_failed("ana");
        assert_eq!(g.login_attempt("192.0.2.4".parse().unwrap(), "Ana").unwrap_err(), Over::Logins);
        assert!(g.login_attempt("192.0.2.5".parse().unwrap(), "ion").is_ok(), "other accounts are not locked");
        // The address limit counts every attempt.
        let many: IpAddr = "192.0.2.77".parse().unwrap();
        for _ in 0..10 {
            let _ = g.login_attempt(many, "someone");
        }
        assert_eq!(g.login_attempt(many, "someone-else").unwrap_err(), Over::Logins);
    }
}
