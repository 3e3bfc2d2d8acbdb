//! How fetches are made: patience, retries, identity, credentials.

use std::sync::Arc;
use std::time::Duration;

/// Progress of a download: bytes so far, and the total when known.
pub type ProgressFn = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// Credentials for private hosts. Never printed: `Debug` shows only which
/// kinds are set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// HTTP basic auth, and the FTP login.
    pub basic: Option<(String, String)>,
    /// An HTTP bearer token.
    pub bearer: Option<String>,
    /// Extra HTTP headers (name, value).
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field(
                "basic",
                &self.basic.as_ref().map(|(user, _)| format!("{user}:***")),
            )
            .field("bearer", &self.bearer.as_ref().map(|_| "***"))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| format!("{name}: ***"))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// How fetches are made: patience, retries, identity.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed without receiving a byte.
    pub read_timeout: Duration,
    /// The largest manifest accepted.
    pub max_manifest_bytes: u64,
    /// The User-Agent sent over HTTP (the updater sets it to name the app too).
    pub user_agent: String,
    /// The slowest transfer accepted, in bytes per second, averaged over
    /// `rate_window` (a server that drips bytes is given up on).
    pub min_rate: u64,
    /// The span over which `min_rate` is measured.
    pub rate_window: Duration,
    /// How often a failed request is tried again (network errors and 5xx).
    pub retries: u32,
    /// The first wait before trying again; it doubles each time.
    pub retry_backoff: Duration,
    /// Credentials for private hosts.
    pub credentials: Credentials,
    /// Root certificates (PEM) to trust instead of the public ones, for a
    /// host with its own certificate authority (HTTPS and FTPS).
    pub tls_roots_pem: Option<Vec<u8>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_manifest_bytes: 1024 * 1024,
            user_agent: format!("leapfrog/{}", env!("CARGO_PKG_VERSION")),
            min_rate: 1024,
            rate_window: Duration::from_secs(30),
            retries: 2,
            retry_backoff: Duration::from_millis(250),
            credentials: Credentials::default(),
            tls_roots_pem: None,
        }
    }
}
