//! [`HttpTransport`]: the [`Transport`] over a real HTTP client (ureq with rustls).

use std::time::Duration;

use super::{Response, Transport, TransportError};

/// The largest answer read: 32 MiB (100 items' details are far below 1 MiB).
pub const BODY_LIMIT: u64 = 32 << 20;

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long to wait for the answer's status line and headers, then for its body.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// A form POST over HTTP or HTTPS, with timeouts, a body size cap, `User-Agent:
/// left4me/<version>` and no redirects (the API answers where it is asked; a redirect means
/// `steam_web_api` is wrong, and a POST must not turn into a GET on the way). Proxy variables
/// are ignored, as they are for the sandboxed download, whose environment is scrubbed: both
/// reach Steam the same way. Server certificates are checked against the Mozilla roots built
/// in (webpki-roots), so no CA bundle on the host is needed.
pub struct HttpTransport {
    agent: ureq::Agent,
    limit: u64,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Default for HttpTransport {
    fn default() -> Self {
        HttpTransport::new()
    }
}

impl HttpTransport {
    /// A transport with the timeouts above and [`BODY_LIMIT`].
    pub fn new() -> HttpTransport {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(concat!("left4me/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RECEIVE_TIMEOUT))
            .timeout_recv_body(Some(RECEIVE_TIMEOUT))
            .build();
        HttpTransport {
            agent: config.into(),
            limit: BODY_LIMIT,
        }
    }

    /// The same transport with another body size cap (tests).
    pub fn with_body_limit(mut self, limit: u64) -> HttpTransport {
        self.limit = limit;
        self
    }
}

impl Transport for HttpTransport {
    fn post_form(&self, url: &str, form: &[(String, String)]) -> Result<Response, TransportError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(TransportError::Failed {
                url: url.to_owned(),
                reason: "only http:// and https:// URLs are used".into(),
            });
        }
        let mut response = self
            .agent
            .post(url)
            .send_form(form.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|err| classify(url, self.limit, err))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.limit)
            .read_to_vec()
            .map_err(|err| classify(url, self.limit, err))?;
        Ok(Response { status, body })
    }
}

/// Sorts ureq's errors into worth-retrying or not.
fn classify(url: &str, limit: u64, err: ureq::Error) -> TransportError {
    let url = url.to_owned();
    let reason = err.to_string();
    match err {
        ureq::Error::BodyExceedsLimit(_) => TransportError::TooLarge { url, limit },
        ureq::Error::Io(_)
        | ureq::Error::Timeout(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_)
        | ureq::Error::BodyStalled => TransportError::Unreachable { url, reason },
        _ => TransportError::Failed { url, reason },
    }
}
