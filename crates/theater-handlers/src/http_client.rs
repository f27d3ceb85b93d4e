//! `theater:simple/http-client`: HTTP requests to the hosts the handler's `allow` names.
//! Granted by the `http-client` handler.
//!
//! A request goes out only to an allowed host (and port), over HTTP or HTTPS (rustls, with the
//! Mozilla roots), never through a proxy. A redirect is followed only to an allowed host. A host
//! name is resolved through a [`NameResolver`] (the system's by default; tests give their own),
//! and an address that is loopback, private, link-local or otherwise not public is refused
//! unless the manifest says `allow_private = true`; an IP literal is held to the same rule.
//! Connect and total timeouts and a response size cap bound each call. Every response is
//! recorded, so a replay needs no network.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use theater::plugin::wasmtime;
use theater::plugin::wasmtime::StoreContextMut;

use theater::plugin::ActorCtx;
use theater::plugin::bindings::theater::simple::http_types::{HttpRequest, HttpResponse};
use theater::plugin::{
    Grant, Handler, HostFuture, HostLinker, RecordAs, Refusal, SettingKey, SettingsInput, at_most,
    positive,
};

type Answer<T> = (Result<T, String>,);

pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 << 20;
/// Redirects followed in one call.
pub const MAX_REDIRECTS: usize = 10;

/// Resolves host names to addresses: the seam between the client and DNS.
pub trait NameResolver: Send + Sync + 'static {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
pub struct SystemResolver;

impl NameResolver for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host, 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// One `allow` entry: a host name or IP literal, lowercase, and a port if it names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    pub host: String,
    pub port: Option<u16>,
}

impl AllowedHost {
    fn parse(entry: &str) -> Result<AllowedHost, String> {
        let refuse = || format!("`allow`: {entry:?} is not a host or host:port");
        // `[v6]:port`, `[v6]`, `host:port`, `host`.
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(refuse)?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(refuse()),
            }
        } else if entry.matches(':').count() > 1 {
            (entry, None)
        } else {
            match entry.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (entry, None),
            }
        };
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| refuse())?),
            None => None,
        };
        if host.is_empty() || host.contains(['/', '@', ' ', '\0']) {
            return Err(refuse());
        }
        // As the URL parser writes hosts, so that they compare: punycode, IPv4 and IPv6
        // in their one canonical form.
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let host = match url::Host::parse(&bracketed).map_err(|_| refuse())? {
            url::Host::Domain(d) => d.to_ascii_lowercase(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        Ok(AllowedHost { host, port })
    }

    fn covers(&self, other: &AllowedHost) -> bool {
        self.host == other.host && (self.port.is_none() || self.port == other.port)
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port)
    }
}

/// The `http-client` handler's settings.
#[derive(Clone)]
pub struct HttpClientSettings {
    pub allow: Vec<AllowedHost>,
    /// `None`: not set (false for a root actor, the parent's for a child).
    pub allow_private: Option<bool>,
    pub connect_timeout_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub max_response_bytes: Option<u64>,
    resolver: Arc<dyn NameResolver>,
    /// Built at the first call and kept: a client holds its connection pool and TLS roots.
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
}

impl std::fmt::Debug for HttpClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClientSettings")
            .field("allow", &self.allow)
            .field("allow_private", &self.allow_private)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl HttpClientSettings {
    pub fn allow_private(&self) -> bool {
        self.allow_private.unwrap_or(false)
    }
    pub fn connect_timeout_ms(&self) -> u64 {
        self.connect_timeout_ms
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS)
    }
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_HTTP_TIMEOUT_MS)
    }
    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES)
    }

    fn permits(&self, url: &reqwest::Url) -> Result<(), String> {
        permits(&self.allow, self.allow_private(), url)
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                // Only what it checks: the settings themselves would hold the client, which
                // holds this policy, and none of them would ever be freed.
                let policy = {
                    let (allow, private) = (self.allow.clone(), self.allow_private());
                    reqwest::redirect::Policy::custom(move |attempt| {
                        if attempt.previous().len() >= MAX_REDIRECTS {
                            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                        }
                        match permits(&allow, private, attempt.url()) {
                            Ok(()) => attempt.follow(),
                            Err(why) => attempt.error(format!("a redirect refused: {why}")),
                        }
                    })
                };
                reqwest::Client::builder()
                    .no_proxy()
                    .redirect(policy)
                    .connect_timeout(Duration::from_millis(self.connect_timeout_ms()))
                    .timeout(Duration::from_millis(self.timeout_ms()))
                    .dns_resolver(Arc::new(Guarded {
                        inner: self.resolver.clone(),
                        allow_private: self.allow_private(),
                    }))
                    .build()
                    .map_err(|e| format!("building the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Whether `url` may be fetched: an allowed host and port, and an IP literal only where
/// addresses of its kind are allowed.
fn permits(allow: &[AllowedHost], allow_private: bool, url: &reqwest::Url) -> Result<(), String> {
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(format!("{scheme:?} is not http or https"));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("{url} has no host")),
    };
    let port = url.port_or_known_default().unwrap_or(0);
    if !allow.iter().any(|a| a.matches(&host, port)) {
        return Err(format!(
            "host {host}:{port} is not in the http-client handler's `allow`"
        ));
    }
    if let Ok(ip) = host.parse::<IpAddr>()
        && !allow_private
        && !is_public(ip)
    {
        return Err(format!(
            "{ip} is not a public address (set `allow_private = true` to reach it)"
        ));
    }
    Ok(())
}

/// The resolver as the client sees it: names only, and non-public addresses refused unless
/// allowed.
struct Guarded {
    inner: Arc<dyn NameResolver>,
    allow_private: bool,
}

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (inner, allow_private) = (self.inner.clone(), self.allow_private);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = inner.resolve(&host).await?;
            let usable: Vec<SocketAddr> = found
                .iter()
                .filter(|ip| allow_private || is_public(**ip))
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect();
            if usable.is_empty() {
                // Without the addresses: they would tell the guest what lies inside.
                let why = if found.is_empty() {
                    format!("host {host} resolves to no address")
                } else {
                    format!(
                        "host {host} resolves only to addresses that are not public (set `allow_private = true` to reach them)"
                    )
                };
                return Err(why.into());
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local, shared
/// (CGNAT), unspecified, broadcast, multicast, documentation or unique-local.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 192 && b == 0 && c == 0)
                || (a == 192 && b == 88 && c == 99)
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() || v6.is_unspecified() {
                return false;
            }
            let seg = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
            };
            // IPv4 carried inside IPv6 (mapped, compatible, NAT64, 6to4) reaches that IPv4.
            if let Some(v4) = v6.to_ipv4() {
                return is_public(IpAddr::V4(v4));
            }
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public(embedded(seg[6], seg[7]));
            }
            if seg[0] == 0x2002 {
                return is_public(embedded(seg[1], seg[2]));
            }
            !(v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] & 0xffc0) == 0xfec0
                || (seg[0] == 0x64 && seg[1] == 0xff9b)
                || (seg[0] == 0x2001 && (seg[1] == 0 || seg[1] == 0x0db8)))
        }
    }
}

/// The `http-client` handler.
pub struct HttpClientHandler {
    resolver: Arc<dyn NameResolver>,
}

impl HttpClientHandler {
    /// The handler with the system's resolver, as [`crate::builtin`] has it.
    pub fn new() -> HttpClientHandler {
        HttpClientHandler::with_resolver(Arc::new(SystemResolver))
    }

    /// The handler resolving names through `resolver` (for tests, or a program that
    /// resolves names its own way): register it with `Registry::replacing`.
    pub fn with_resolver(resolver: Arc<dyn NameResolver>) -> HttpClientHandler {
        HttpClientHandler { resolver }
    }
}

impl Default for HttpClientHandler {
    fn default() -> Self {
        HttpClientHandler::new()
    }
}

impl Handler for HttpClientHandler {
    type Settings = HttpClientSettings;
    type State = ();

    fn name(&self) -> &'static str {
        "http-client"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["theater:simple/http-client"]
    }
    fn keys(&self) -> &'static [SettingKey] {
        &[
            SettingKey {
                key: "allow",
                rule: "every host (and port) is one of the parent's; unset: none",
            },
            SettingKey {
                key: "allow_private",
                rule: "true only under a parent with true; unset: the parent's",
            },
            SettingKey {
                key: "connect_timeout_ms",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "timeout_ms",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "max_response_bytes",
                rule: "at most the parent's; unset: the parent's",
            },
        ]
    }
    fn parse(&self, input: &SettingsInput<'_>) -> Result<HttpClientSettings, String> {
        let table = input.table;
        let allow = match table.get("allow") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_str()).collect::<Option<Vec<_>>>())
                .ok_or("`allow` must be a list of hosts (\"example.com\" or \"example.com:8080\")")?
                .into_iter()
                .map(AllowedHost::parse)
                .collect::<Result<_, _>>()?,
        };
        let allow_private = match table.get("allow_private") {
            None => None,
            Some(v) => Some(v.as_bool().ok_or("`allow_private` must be true or false")?),
        };
        Ok(HttpClientSettings {
            allow,
            allow_private,
            connect_timeout_ms: positive(table, "connect_timeout_ms")?,
            timeout_ms: positive(table, "timeout_ms")?,
            max_response_bytes: positive(table, "max_response_bytes")?,
            resolver: self.resolver.clone(),
            client: Arc::default(),
        })
    }
    fn attenuate(
        &self,
        parent: &HttpClientSettings,
        child: HttpClientSettings,
    ) -> Result<HttpClientSettings, Refusal> {
        let refuse = |key: &str, message: String| Refusal::handler("http-client", key, message);
        if let Some(wider) = child
            .allow
            .iter()
            .find(|c| !parent.allow.iter().any(|p| p.covers(c)))
        {
            return Err(refuse(
                "allow",
                format!("{wider:?} is not within the parent's allow list"),
            ));
        }
        let allow_private = match (parent.allow_private(), child.allow_private) {
            (false, Some(true)) => {
                return Err(refuse(
                    "allow_private",
                    "true is refused under a parent without it".into(),
                ));
            }
            (parent, child) => Some(child.unwrap_or(parent)),
        };
        let limit = |key, child, parent| at_most("http-client", key, child, parent);
        Ok(HttpClientSettings {
            allow_private,
            connect_timeout_ms: limit(
                "connect_timeout_ms",
                child.connect_timeout_ms,
                parent.connect_timeout_ms(),
            )?,
            timeout_ms: limit("timeout_ms", child.timeout_ms, parent.timeout_ms())?,
            max_response_bytes: limit(
                "max_response_bytes",
                child.max_response_bytes,
                parent.max_response_bytes(),
            )?,
            client: Arc::default(),
            ..child
        })
    }
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
        let mut client = linker.interface("theater:simple/http-client")?;
        client.func("send-http", RecordAs::Value, send_http)?;
        Ok(())
    }
    fn grants(&self, settings: &HttpClientSettings) -> Vec<Grant> {
        vec![Grant::Hosts(
            settings
                .allow
                .iter()
                .map(|a| match a.port {
                    Some(port) => format!("{}:{port}", a.host),
                    None => a.host.clone(),
                })
                .collect(),
        )]
    }
    fn new_state(&self, _: &HttpClientSettings) {}
}

fn send_http(
    store: StoreContextMut<'_, ActorCtx>,
    (request,): (HttpRequest,),
) -> HostFuture<'_, Answer<HttpResponse>> {
    let settings = store
        .data()
        .settings::<HttpClientSettings>()
        .cloned()
        .ok_or_else(|| "the http-client handler is not granted".to_string());
    Box::pin(async move {
        let result = async { send(&settings?, request).await }.await;
        Ok((result,))
    })
}

async fn send(settings: &HttpClientSettings, request: HttpRequest) -> Result<HttpResponse, String> {
    let url = reqwest::Url::parse(&request.uri)
        .map_err(|e| format!("{:?} is not a URL: {e}", request.uri))?;
    settings.permits(&url)?;
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| format!("{:?} is not an HTTP method", request.method))?;
    let mut builder = settings.client()?.request(method, url.clone());
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("host") {
            return Err("the `host` header comes from the URI; it cannot be set".into());
        }
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header {name} is not a header value"))?;
        builder = builder.header(name, value);
    }
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    let mut response = builder.send().await.map_err(|e| describe(&url, &e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let cap = settings.max_response_bytes();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&url, &e))? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(format!(
                "the response from {url} is more than {cap} bytes (the http-client handler's `max_response_bytes`)"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse {
        status,
        headers,
        body: Some(body),
    })
}

/// One line for a failed request: the innermost cause says what went wrong.
fn describe(url: &reqwest::Url, e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let what = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_redirect() || e.is_connect() || e.is_request() {
        cause.to_string()
    } else {
        e.to_string()
    };
    format!(
        "{} {url}: {what}",
        if e.is_redirect() {
            "following"
        } else {
            "requesting"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_are_told_apart() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::7f00:1",
            "64:ff9b::a00:5",
            "2002:7f00:1::",
            "2001::1",
            "fec0::1",
            "192.0.0.192",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn allow_entries_name_hosts_and_ports() {
        let a = AllowedHost::parse("Example.com:8080").unwrap();
        assert_eq!(a.host, "example.com");
        assert_eq!(a.port, Some(8080));
        assert!(a.matches("example.com", 8080) && !a.matches("example.com", 80));
        let any = AllowedHost::parse("example.com").unwrap();
        assert!(any.covers(&a) && !a.covers(&any));
        assert_eq!(AllowedHost::parse("[::1]:80").unwrap().host, "::1");
        assert_eq!(AllowedHost::parse("[0:0::1]").unwrap().host, "::1");
        assert_eq!(AllowedHost::parse("127.1").unwrap().host, "127.0.0.1");
        for bad in ["", "a/b", "user@host", "host:port", "host:99999"] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }
}
