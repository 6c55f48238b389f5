//! Where a secret may make keyroll connect, and which IAM users it may make keyroll act on.
//!
//! A secret's own value names the HTTP API its rotation requests go to and the IAM user
//! whose keys are replaced. Anyone allowed to write a secret could otherwise point keyroll —
//! which runs with powerful credentials — at the host's metadata service (169.254.169.254),
//! a loopback admin port or an internal network, and read the answer back from
//! `AWSPENDING`. [`TargetPolicy`] is the operator's allow-list, the same for every driver:
//!
//! | setting | `keyroll serve` | `keyroll rotate` | Lambda |
//! | --- | --- | --- | --- |
//! | [`TargetPolicy::allow_hosts`] | `[targets.http] allow_hosts` | `--allow-host` | `KEYROLL_HTTP_ALLOW_HOSTS` |
//! | [`TargetPolicy::allow_networks`] | `[targets.http] allow_networks` | `--allow-network` | `KEYROLL_HTTP_ALLOW_NETWORKS` |
//! | [`TargetPolicy::allow_iam_users`] | `[targets.iam] allow_users` | `--allow-iam-user` | `KEYROLL_IAM_ALLOW_USERS` |
//!
//! The rules, all pure functions of (host, address, policy) — see [`TargetPolicy::decide`]:
//!
//! - a request's host must match `allow_hosts` (an exact name, `*.suffix` for any name under
//!   `suffix`, or `*` for any host); an IP-literal host is also allowed when it lies inside
//!   an `allow_networks` network;
//! - every address keyroll connects to must be a public address, or lie inside an
//!   `allow_networks` network. Loopback, link-local (169.254.169.254 included), unique-local
//!   (fd00:ec2::254 included), RFC 1918, CGNAT, 0.0.0.0/8, multicast, broadcast,
//!   unspecified, documentation and other reserved ranges are not public; IPv4-mapped,
//!   IPv4-compatible, NAT64 and 6to4 IPv6 addresses are judged by the IPv4 address they
//!   carry. The check is made on the addresses DNS answered ([`CheckedResolver`]), and only
//!   those that pass are connected to, so a name that later resolves elsewhere (DNS
//!   rebinding) gains nothing;
//! - an IAM user must be named in `allow_iam_users` (exact name), lie under one of its path
//!   prefixes (`/service/`), or the list must hold `*`.
//!
//! Nothing is allowed by default: an empty policy refuses every HTTP request and every IAM
//! user, with an error naming the setting to change.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use keyroll_core::ports::TargetError;

/// Why a setting's value cannot be used (raised when a driver reads its configuration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "allow_hosts entry {0:?} is not a host name: write a name (api.example.com), \
         `*.example.com` for every name under example.com, an IP address, or `*`"
    )]
    Host(String),
    #[error(
        "allow_networks entry {0:?} is not a network: write an address with a prefix length, \
         such as 10.0.0.0/8, 127.0.0.1/32 or fd00::/8"
    )]
    Network(String),
    #[error("allow_networks entry {given:?} has host bits set: did you mean {meant}?")]
    HostBits { given: String, meant: String },
    #[error(
        "allow_iam_users entry {0:?} is not a user name or path: write a user name \
         (ci-deployer), a path prefix that starts and ends with `/` (/service/), or `*`"
    )]
    User(String),
}

/// An `allow_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: any host (addresses are still checked).
    Any,
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    Suffix(String),
    /// An exact name or IP address.
    Exact(String),
}

/// Lower case, without a trailing dot, IPv6 without brackets.
fn normalize_host(host: &str) -> String {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    match h.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        Some(inner) => inner.to_string(),
        None => h,
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl FromStr for HostPattern {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        let bad = || PolicyError::Host(s.to_string());
        let t = s.trim();
        if t == "*" {
            return Ok(HostPattern::Any);
        }
        if let Some(suffix) = t.strip_prefix("*.") {
            let n = normalize_host(suffix);
            return if valid_name(&n) {
                Ok(HostPattern::Suffix(n))
            } else {
                Err(bad())
            };
        }
        let n = normalize_host(t);
        if let Ok(ip) = n.parse::<IpAddr>() {
            return Ok(HostPattern::Exact(canonical(ip).to_string()));
        }
        if valid_name(&n) {
            Ok(HostPattern::Exact(n))
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Suffix(s) => write!(f, "*.{s}"),
            HostPattern::Exact(s) => f.write_str(s),
        }
    }
}

impl HostPattern {
    /// Whether `host` (normalized) matches.
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Suffix(s) => host
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            HostPattern::Exact(e) => e == host,
        }
    }
}

/// An `allow_networks` entry: an address and a prefix length (a bare address is /32 or
/// /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` lies inside (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => mask32(u32::from(a), self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => mask128(u128::from(a), self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

fn mask32(v: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        v & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask128(v: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        v & (u128::MAX << (128 - u32::from(prefix)))
    }
}

impl FromStr for Network {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        let bad = || PolicyError::Network(s.to_string());
        let t = s.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr = normalize_host(addr).parse::<IpAddr>().map_err(|_| bad())?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(bad()),
            },
        };
        let masked = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(mask32(u32::from(a), prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(mask128(u128::from(a), prefix))),
        };
        if masked != addr {
            return Err(PolicyError::HostBits {
                given: t.to_string(),
                meant: format!("{masked}/{prefix}"),
            });
        }
        Ok(Network { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An `allow_iam_users` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserPattern {
    /// `*`: any user.
    Any,
    /// `/service/`: users whose IAM path starts with this.
    PathPrefix(String),
    /// A user name (IAM user names are case-insensitive).
    Name(String),
}

impl FromStr for UserPattern {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        let t = s.trim();
        let bad = || PolicyError::User(s.to_string());
        if t == "*" {
            return Ok(UserPattern::Any);
        }
        let ok_chars = |x: &str| {
            x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
        };
        if t.starts_with('/') {
            if t == "/"
                || (t.len() >= 2
                    && t.ends_with('/')
                    && t[1..t.len() - 1]
                        .split('/')
                        .all(|seg| !seg.is_empty() && ok_chars(seg)))
            {
                return Ok(UserPattern::PathPrefix(t.to_string()));
            }
            return Err(bad());
        }
        if !t.is_empty() && t.len() <= 64 && ok_chars(t) {
            Ok(UserPattern::Name(t.to_string()))
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for UserPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserPattern::Any => f.write_str("*"),
            UserPattern::PathPrefix(p) | UserPattern::Name(p) => f.write_str(p),
        }
    }
}

macro_rules! serde_from_str {
    ($t:ty) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_from_str!(HostPattern);
serde_from_str!(Network);
serde_from_str!(UserPattern);

/// What kind of address an IP is, for the egress rule and its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    LinkLocal,
    UniqueLocal,
    Private,
    SharedCgnat,
    ThisNetwork,
    Unspecified,
    Multicast,
    Broadcast,
    Documentation,
    Reserved,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::LinkLocal => "link-local (metadata services live here)",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::Private => "private (RFC 1918)",
            AddressClass::SharedCgnat => "shared (CGNAT, 100.64.0.0/10)",
            AddressClass::ThisNetwork => "\"this network\" (0.0.0.0/8)",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Reserved => "reserved",
        })
    }
}

/// The IPv4 address an IPv6 address stands for, if it carries one: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated), NAT64 (`64:ff9b::/96`)
/// or 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let v = u128::from(a);
    let low = Ipv4Addr::from(v as u32);
    let s = a.segments();
    if v >> 32 == 0xffff || (v >> 32 == 0 && v > 1) {
        return Some(low);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::from((v >> 80) as u32));
    }
    None
}

/// An IPv4-mapped IPv6 address as IPv4; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn in4(a: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    mask32(u32::from(a), prefix) == u32::from(Ipv4Addr::from(net))
}

fn classify_v4(a: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    if a.is_broadcast() {
        Broadcast
    } else if a.is_unspecified() {
        Unspecified
    } else if in4(a, [0, 0, 0, 0], 8) {
        ThisNetwork
    } else if in4(a, [127, 0, 0, 0], 8) {
        Loopback
    } else if in4(a, [169, 254, 0, 0], 16) {
        LinkLocal
    } else if in4(a, [10, 0, 0, 0], 8)
        || in4(a, [172, 16, 0, 0], 12)
        || in4(a, [192, 168, 0, 0], 16)
    {
        Private
    } else if in4(a, [100, 64, 0, 0], 10) {
        SharedCgnat
    } else if in4(a, [224, 0, 0, 0], 4) {
        Multicast
    } else if in4(a, [192, 0, 2, 0], 24)
        || in4(a, [198, 51, 100, 0], 24)
        || in4(a, [203, 0, 113, 0], 24)
    {
        Documentation
    } else if in4(a, [240, 0, 0, 0], 4)
        || in4(a, [192, 0, 0, 0], 24)
        || in4(a, [198, 18, 0, 0], 15)
        || in4(a, [192, 88, 99, 0], 24)
    {
        Reserved
    } else {
        Public
    }
}

/// What kind of address `ip` is. IPv6 forms carrying an IPv4 address are judged by it
/// (and are never better than reserved when that address is public: IPv4-compatible
/// addresses are deprecated, NAT64 and 6to4 relay elsewhere).
pub fn classify(ip: IpAddr) -> AddressClass {
    use AddressClass::*;
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            let s = a.segments();
            if a.is_unspecified() {
                return Unspecified;
            }
            if a.is_loopback() {
                return Loopback;
            }
            if let Some(v4) = embedded_v4(a) {
                return match classify_v4(v4) {
                    Public if a.to_ipv4_mapped().is_none() => Reserved,
                    c => c,
                };
            }
            if s[0] & 0xffc0 == 0xfe80 {
                LinkLocal
            } else if s[0] & 0xfe00 == 0xfc00 {
                UniqueLocal
            } else if s[0] & 0xff00 == 0xff00 {
                Multicast
            } else if (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] < 0x1000) {
                Documentation
            } else if s[0] & 0xffc0 == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0)
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])
                || v >> 96 == 0
                || s[0] & 0xe000 != 0x2000
            {
                // site-local (deprecated), Teredo, discard-only, the rest of ::/96, and
                // everything outside global unicast 2000::/3.
                Reserved
            } else {
                Public
            }
        }
    }
}

/// A refused target: the message names what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "HTTP target host {host:?} is not allowed: add it to [targets.http] allow_hosts in the \
         server config (keyroll serve), --allow-host (keyroll rotate) or \
         KEYROLL_HTTP_ALLOW_HOSTS (Lambda)"
    )]
    HostNotAllowed { host: String },
    #[error(
        "HTTP target host {host:?} is at {addr}, a {class} address, which is not allowed: add a \
         network containing it to [targets.http] allow_networks in the server config (keyroll \
         serve), --allow-network (keyroll rotate) or KEYROLL_HTTP_ALLOW_NETWORKS (Lambda)"
    )]
    AddressNotAllowed {
        host: String,
        addr: IpAddr,
        class: AddressClass,
    },
    #[error(
        "IAM user {user:?}{} is not allowed: add its name or a path prefix to [targets.iam] \
         allow_users in the server config (keyroll serve), --allow-iam-user (keyroll rotate) \
         or KEYROLL_IAM_ALLOW_USERS (Lambda)",
        path.as_deref().map(|p| format!(" (path {p})")).unwrap_or_default()
    )]
    IamUserNotAllowed { user: String, path: Option<String> },
}

impl From<Refusal> for TargetError {
    fn from(r: Refusal) -> Self {
        TargetError::Misconfigured(r.to_string())
    }
}

/// What the user-name check alone says about an IAM user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDecision {
    Allowed,
    Refused,
    /// Only path prefixes could allow it: the user's path must be looked up.
    NeedsPath,
}

/// The operator's allow-lists (see the module documentation). The default allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_hosts: Vec<HostPattern>,
    pub allow_networks: Vec<Network>,
    pub allow_iam_users: Vec<UserPattern>,
}

impl TargetPolicy {
    /// A policy from the settings' strings (entries may also be comma-separated).
    pub fn parse<S: AsRef<str>>(
        hosts: &[S],
        networks: &[S],
        iam_users: &[S],
    ) -> Result<Self, PolicyError> {
        fn each<T: FromStr<Err = PolicyError>, S: AsRef<str>>(
            v: &[S],
        ) -> Result<Vec<T>, PolicyError> {
            v.iter()
                .flat_map(|s| s.as_ref().split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect()
        }
        Ok(TargetPolicy {
            allow_hosts: each(hosts)?,
            allow_networks: each(networks)?,
            allow_iam_users: each(iam_users)?,
        })
    }

    /// Everything allowed: for tests and for operators who say so explicitly.
    pub fn allow_all() -> Self {
        TargetPolicy {
            allow_hosts: vec![HostPattern::Any],
            allow_networks: vec![
                Network {
                    addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    prefix: 0,
                },
                Network {
                    addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    prefix: 0,
                },
            ],
            allow_iam_users: vec![UserPattern::Any],
        }
    }

    fn in_networks(&self, ip: IpAddr) -> bool {
        self.allow_networks.iter().any(|n| n.contains(ip))
    }

    /// The host check alone (no DNS): `host` is a URL's host (a name, an IPv4 address or a
    /// bracketed IPv6 address). IP literals are also checked as addresses.
    pub fn check_host(&self, host: &str) -> Result<(), Refusal> {
        let h = normalize_host(host);
        let literal = h.parse::<IpAddr>().ok().map(canonical);
        let key = literal.map_or_else(|| h.clone(), |ip| ip.to_string());
        let named = self.allow_hosts.iter().any(|p| p.matches(&key));
        match literal {
            Some(ip) => {
                if !named && !self.in_networks(ip) {
                    return Err(Refusal::HostNotAllowed { host: key });
                }
                self.check_address(&key, ip)
            }
            None if named => Ok(()),
            None => Err(Refusal::HostNotAllowed { host: key }),
        }
    }

    /// The address check alone: `addr` (what `host` resolved to) must be public or inside
    /// `allow_networks`.
    pub fn check_address(&self, host: &str, addr: IpAddr) -> Result<(), Refusal> {
        let class = classify(addr);
        if class == AddressClass::Public || self.in_networks(addr) {
            Ok(())
        } else {
            Err(Refusal::AddressNotAllowed {
                host: normalize_host(host),
                addr: canonical(addr),
                class,
            })
        }
    }

    /// May keyroll connect to `addr` for a request to `host`? Both checks.
    pub fn decide(&self, host: &str, addr: IpAddr) -> Result<(), Refusal> {
        self.check_host(host)?;
        self.check_address(host, addr)
    }

    /// The user-name check, made before any IAM call.
    pub fn iam_user(&self, user: &str) -> UserDecision {
        let mut paths = false;
        for p in &self.allow_iam_users {
            match p {
                UserPattern::Any => return UserDecision::Allowed,
                UserPattern::Name(n) if n.eq_ignore_ascii_case(user) => {
                    return UserDecision::Allowed;
                }
                UserPattern::Name(_) => {}
                UserPattern::PathPrefix(_) => paths = true,
            }
        }
        if paths {
            UserDecision::NeedsPath
        } else {
            UserDecision::Refused
        }
    }

    /// The full IAM check, given the user's IAM path (`/`, `/service/`, ...).
    pub fn check_iam_user(&self, user: &str, path: &str) -> Result<(), Refusal> {
        let allowed = self.iam_user(user) == UserDecision::Allowed
            || self.allow_iam_users.iter().any(|p| match p {
                UserPattern::PathPrefix(prefix) => path.starts_with(prefix.as_str()),
                _ => false,
            });
        if allowed {
            Ok(())
        } else {
            Err(Refusal::IamUserNotAllowed {
                user: user.to_string(),
                path: Some(path.to_string()),
            })
        }
    }
}

/// A future of DNS answers.
pub type LookupFuture = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// Name → addresses. [`SystemLookup`] asks the system resolver; tests inject fixed answers.
pub trait Lookup: Send + Sync {
    fn lookup(&self, name: &str) -> LookupFuture;
}

/// The system resolver (`getaddrinfo`, as reqwest's default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, name: &str) -> LookupFuture {
        let name = name.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// reqwest's resolver for HTTP targets: resolves the name, checks every answer with
/// [`TargetPolicy::decide`], and hands reqwest only the addresses that passed — so the
/// address connected to is always one that was checked. When none passes, the first
/// [`Refusal`] is the error (found again in the request's error chain).
pub struct CheckedResolver {
    policy: Arc<TargetPolicy>,
    lookup: Arc<dyn Lookup>,
}

impl CheckedResolver {
    pub fn new(policy: Arc<TargetPolicy>, lookup: Arc<dyn Lookup>) -> Self {
        CheckedResolver { policy, lookup }
    }

    /// The checked addresses of `name` (port 0: reqwest puts the URL's port in).
    pub async fn resolve_checked(&self, name: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        self.policy
            .check_host(name)
            .map_err(ResolveError::Refused)?;
        let answers = self
            .lookup
            .lookup(name)
            .await
            .map_err(|e| ResolveError::Lookup(e.to_string()))?;
        let mut first_refusal = None;
        let mut ok = Vec::new();
        for ip in answers {
            match self.policy.decide(name, ip) {
                Ok(()) => ok.push(SocketAddr::new(ip, 0)),
                Err(r) => {
                    tracing::warn!(host = name, address = %ip, "DNS answer refused by the HTTP target allow-list");
                    first_refusal.get_or_insert(r);
                }
            }
        }
        match (ok.is_empty(), first_refusal) {
            (false, _) => Ok(ok),
            (true, Some(r)) => Err(ResolveError::Refused(r)),
            (true, None) => Err(ResolveError::Lookup(format!("{name} has no address"))),
        }
    }
}

/// Why [`CheckedResolver`] gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("cannot resolve the host: {0}")]
    Lookup(String),
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let me = CheckedResolver {
            policy: self.policy.clone(),
            lookup: self.lookup.clone(),
        };
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addrs = me.resolve_checked(&name).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The [`Refusal`] somewhere in an error's source chain, if any.
pub fn find_refusal(e: &(dyn std::error::Error + 'static)) -> Option<Refusal> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(ResolveError::Refused(r)) = err.downcast_ref::<ResolveError>() {
            return Some(r.clone());
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(hosts: &[&str], nets: &[&str]) -> TargetPolicy {
        TargetPolicy::parse(hosts, nets, &[]).unwrap()
    }

    #[test]
    fn addresses_are_classified() {
        use AddressClass::*;
        let table: &[(&str, AddressClass)] = &[
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("::1", Loopback),
            ("169.254.169.254", LinkLocal),
            ("169.254.0.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fd00:ec2::254", UniqueLocal),
            ("fc00::1", UniqueLocal),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", SharedCgnat),
            ("100.100.100.200", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", ThisNetwork),
            ("::", Unspecified),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("192.0.0.8", Reserved),
            ("198.18.0.1", Reserved),
            ("192.0.2.1", Documentation),
            ("2001:db8::1", Documentation),
            ("fec0::1", Reserved),
            ("2001::1", Reserved),
            ("100::1", Reserved),
            // IPv4 inside IPv6
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:100.64.0.1", SharedCgnat),
            ("::ffff:0.0.0.0", Unspecified),
            ("::127.0.0.1", Loopback),
            ("::169.254.169.254", LinkLocal),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b::7f00:1", Loopback),
            ("2002:a9fe:a9fe::1", LinkLocal),
            ("2002:0a00:0001::", Private),
            ("::8.8.8.8", Reserved),
            ("64:ff9b::808:808", Reserved),
            // public
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("172.32.0.1", Public),
            ("172.15.255.255", Public),
            ("100.63.255.255", Public),
            ("100.128.0.0", Public),
            ("169.253.255.255", Public),
            ("192.169.0.1", Public),
            ("11.0.0.1", Public),
            ("::ffff:8.8.8.8", Public),
            ("2606:4700:4700::1111", Public),
            ("2a00:1450:4001::1", Public),
        ];
        for (a, want) in table {
            assert_eq!(classify(ip(a)), *want, "{a}");
        }
    }

    #[test]
    fn the_empty_policy_refuses_everything() {
        let p = TargetPolicy::default();
        for (host, addr) in [
            ("api.example.com", "93.184.216.34"),
            ("127.0.0.1", "127.0.0.1"),
            ("localhost", "127.0.0.1"),
            ("169.254.169.254", "169.254.169.254"),
            ("[fd00:ec2::254]", "fd00:ec2::254"),
        ] {
            assert!(p.decide(host, ip(addr)).is_err(), "{host} {addr}");
        }
        assert_eq!(p.iam_user("ci"), UserDecision::Refused);
        assert!(p.check_iam_user("ci", "/").is_err());
    }

    #[test]
    fn decisions_over_hosts_and_addresses() {
        let p = policy(
            &["api.example.com", "*.partner.example", "localhost"],
            &["127.0.0.1/32"],
        );
        let allowed = [
            ("api.example.com", "93.184.216.34"),
            ("API.Example.COM.", "2606:2800:220:1::1"),
            ("keys.partner.example", "203.0.114.1"),
            ("a.b.partner.example", "8.8.4.4"),
            ("localhost", "127.0.0.1"),
            ("localhost", "::ffff:127.0.0.1"),
            // an IP literal inside allow_networks needs no allow_hosts entry
            ("127.0.0.1", "127.0.0.1"),
            ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ];
        for (h, a) in allowed {
            assert_eq!(p.decide(h, ip(a)), Ok(()), "{h} {a}");
        }
        let host_refused = [
            ("partner.example", "8.8.8.8"),
            ("evilpartner.example", "8.8.8.8"),
            ("api.example.com.evil.test", "8.8.8.8"),
            ("example.com", "93.184.216.34"),
            ("8.8.8.8", "8.8.8.8"),
            ("127.0.0.2", "127.0.0.2"),
            ("169.254.169.254", "169.254.169.254"),
            ("10.0.0.5", "10.0.0.5"),
            ("[::1]", "::1"),
        ];
        for (h, a) in host_refused {
            assert!(
                matches!(p.decide(h, ip(a)), Err(Refusal::HostNotAllowed { .. })),
                "{h} {a}"
            );
        }
        // Allowed names whose DNS answers are not public: refused by address (rebinding).
        let addr_refused = [
            ("api.example.com", "127.0.0.2"),
            ("api.example.com", "169.254.169.254"),
            ("api.example.com", "::ffff:169.254.169.254"),
            ("api.example.com", "64:ff9b::a9fe:a9fe"),
            ("api.example.com", "fd00:ec2::254"),
            ("api.example.com", "fe80::1"),
            ("api.example.com", "10.0.0.1"),
            ("api.example.com", "172.16.5.4"),
            ("api.example.com", "192.168.0.1"),
            ("api.example.com", "100.64.0.1"),
            ("api.example.com", "0.0.0.0"),
            ("api.example.com", "0.1.2.3"),
            ("api.example.com", "::"),
            ("api.example.com", "224.0.0.251"),
            ("api.example.com", "255.255.255.255"),
            ("keys.partner.example", "::1"),
            ("localhost", "::1"),
            ("localhost", "127.0.0.2"),
        ];
        for (h, a) in addr_refused {
            assert!(
                matches!(p.decide(h, ip(a)), Err(Refusal::AddressNotAllowed { .. })),
                "{h} {a}"
            );
        }
    }

    #[test]
    fn networks_open_internal_addresses_only_for_allowed_hosts() {
        let p = policy(&["*.internal.example"], &["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(p.decide("svc.internal.example", ip("10.1.2.3")), Ok(()));
        assert_eq!(
            p.decide("svc.internal.example", ip("fd00:ec2::254")),
            Ok(())
        );
        assert_eq!(p.decide("10.9.9.9", ip("10.9.9.9")), Ok(()));
        assert!(p.decide("other.example", ip("10.1.2.3")).is_err());
        assert!(
            p.decide("svc.internal.example", ip("169.254.169.254"))
                .is_err()
        );
        assert!(p.decide("svc.internal.example", ip("192.168.0.1")).is_err());
        let any = policy(&["*"], &[]);
        assert_eq!(any.decide("whatever.example", ip("8.8.8.8")), Ok(()));
        assert_eq!(any.decide("8.8.8.8", ip("8.8.8.8")), Ok(()));
        assert!(any.decide("whatever.example", ip("127.0.0.1")).is_err());
        assert!(
            any.decide("169.254.169.254", ip("169.254.169.254"))
                .is_err()
        );
        let all = TargetPolicy::allow_all();
        assert_eq!(all.decide("x", ip("169.254.169.254")), Ok(()));
        assert_eq!(all.decide("[::1]", ip("::1")), Ok(()));
    }

    #[test]
    fn messages_name_the_setting() {
        let p = TargetPolicy::default();
        let e = p
            .decide("127.0.0.1", ip("127.0.0.1"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"127.0.0.1\"")
                && e.contains("allow_hosts")
                && e.contains("--allow-host")
                && e.contains("KEYROLL_HTTP_ALLOW_HOSTS"),
            "{e}"
        );
        let p = policy(&["api.example.com"], &[]);
        let e = p
            .decide("api.example.com", ip("169.254.169.254"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("169.254.169.254")
                && e.contains("link-local")
                && e.contains("allow_networks")
                && e.contains("--allow-network")
                && e.contains("KEYROLL_HTTP_ALLOW_NETWORKS"),
            "{e}"
        );
        let e = Refusal::IamUserNotAllowed {
            user: "admin".into(),
            path: None,
        }
        .to_string();
        assert!(
            e.contains("\"admin\"")
                && e.contains("[targets.iam] allow_users")
                && e.contains("--allow-iam-user")
                && e.contains("KEYROLL_IAM_ALLOW_USERS"),
            "{e}"
        );
    }

    #[test]
    fn settings_parse_and_refuse_nonsense() {
        let p = TargetPolicy::parse(
            &["api.example.com, *.corp.example", "[::1]", "127.0.0.1"],
            &["127.0.0.0/8", "::1", "10.0.0.0/8,fd00::/8"],
            &["ci-deployer", "/service/", "*"],
        )
        .unwrap();
        assert_eq!(p.allow_hosts.len(), 4);
        assert_eq!(p.allow_networks.len(), 4);
        assert_eq!(p.allow_hosts[2], HostPattern::Exact("::1".into()));
        assert_eq!(p.allow_networks[1].to_string(), "::1/128");
        assert_eq!(p.allow_iam_users.len(), 3);
        for bad in [
            "http://api.example.com",
            "api.example.com:443",
            "api.example.com/x",
            "*.",
            "a..b",
            "**.x",
        ] {
            assert!(
                matches!(bad.parse::<HostPattern>(), Err(PolicyError::Host(_))),
                "{bad}"
            );
        }
        for bad in ["10.0.0.0/33", "10.0.0/8", "::1/129", "x", "10.0.0.0/-1"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
        assert_eq!(
            "10.0.0.1/8".parse::<Network>(),
            Err(PolicyError::HostBits {
                given: "10.0.0.1/8".into(),
                meant: "10.0.0.0/8".into()
            })
        );
        for bad in ["service/", "/service", "//", "a b", "/a//b/", ""] {
            assert!(bad.parse::<UserPattern>().is_err(), "{bad:?}");
        }
        #[derive(serde::Deserialize)]
        struct T {
            hosts: Vec<HostPattern>,
        }
        let t: T = serde_json::from_str(r#"{"hosts":["*.a.example"]}"#).unwrap();
        assert_eq!(t.hosts, [HostPattern::Suffix("a.example".into())]);
        assert!(serde_json::from_str::<T>(r#"{"hosts":["a b"]}"#).is_err());
    }

    #[test]
    fn iam_users_by_name_and_path() {
        let p = TargetPolicy::parse::<&str>(&[], &[], &["ci-deployer", "/service/"]).unwrap();
        assert_eq!(p.iam_user("ci-deployer"), UserDecision::Allowed);
        assert_eq!(p.iam_user("CI-Deployer"), UserDecision::Allowed);
        assert_eq!(p.iam_user("admin"), UserDecision::NeedsPath);
        assert_eq!(p.check_iam_user("admin", "/service/"), Ok(()));
        assert_eq!(p.check_iam_user("admin", "/service/team-a/"), Ok(()));
        assert!(p.check_iam_user("admin", "/").is_err());
        assert!(p.check_iam_user("admin", "/services/").is_err());
        let names = TargetPolicy::parse::<&str>(&[], &[], &["ci-deployer"]).unwrap();
        assert_eq!(names.iam_user("admin"), UserDecision::Refused);
        let any = TargetPolicy::parse::<&str>(&[], &[], &["*"]).unwrap();
        assert_eq!(any.iam_user("admin"), UserDecision::Allowed);
    }

    struct Fixed(Vec<IpAddr>);
    impl Lookup for Fixed {
        fn lookup(&self, _name: &str) -> LookupFuture {
            let v = self.0.clone();
            Box::pin(async move { Ok(v) })
        }
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_checked_answers() {
        let p = Arc::new(policy(&["api.example.com"], &[]));
        let r = CheckedResolver::new(
            p.clone(),
            Arc::new(Fixed(vec![
                ip("169.254.169.254"),
                ip("93.184.216.34"),
                ip("::1"),
            ])),
        );
        let got = r.resolve_checked("api.example.com").await.unwrap();
        assert_eq!(got, [SocketAddr::new(ip("93.184.216.34"), 0)]);

        let r = CheckedResolver::new(p.clone(), Arc::new(Fixed(vec![ip("169.254.169.254")])));
        match r.resolve_checked("api.example.com").await {
            Err(ResolveError::Refused(Refusal::AddressNotAllowed { addr, .. })) => {
                assert_eq!(addr, ip("169.254.169.254"))
            }
            other => panic!("{other:?}"),
        }
        let r = CheckedResolver::new(p, Arc::new(Fixed(vec![ip("8.8.8.8")])));
        assert!(matches!(
            r.resolve_checked("other.example").await,
            Err(ResolveError::Refused(Refusal::HostNotAllowed { .. }))
        ));
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Box::new(ResolveError::Refused(Refusal::HostNotAllowed {
                host: "h".into(),
            }));
        assert!(find_refusal(boxed.as_ref()).is_some());
    }
}
