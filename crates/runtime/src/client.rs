//! gRPC client channels to other services: a list of endpoints balanced client-side, connected
//! lazily (a backend that is down yields UNAVAILABLE, never a start-up failure), with TLS when
//! configured, the trace context on every call, and the calling service's own identity
//! ([`ServiceToken`], via [`GrpcChannel::carrying`]) where no transport carries it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use http::HeaderValue;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::{ConfigError, TlsSettings};
use crate::context::{Propagate, PropagateLayer};

/// A client channel that carries the trace context and Envoy's headers on every call.
pub type GrpcChannel = Propagate<Channel>;

/// One or more addresses of the same service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints(Vec<Uri>);

impl Endpoints {
    /// Parses a comma-separated list of `http://` or `https://` URLs.
    pub fn parse(list: &str) -> Result<Self, String> {
        let uris = list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                let uri: Uri = item
                    .parse()
                    .map_err(|error| format!("{item:?} is not a URL: {error}"))?;
                match uri.scheme_str() {
                    Some("http" | "https") if uri.host().is_some() => Ok(uri),
                    _ => Err(format!(
                        "{item:?} must be an http:// or https:// URL with a host"
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if uris.is_empty() {
            return Err("the endpoint list is empty".to_owned());
        }
        Ok(Self(uris))
    }

    /// One endpoint.
    pub fn single(uri: Uri) -> Self {
        Self(vec![uri])
    }

    /// The addresses.
    pub fn uris(&self) -> &[Uri] {
        &self.0
    }
}

/// A lazily connected, client-side balanced channel over `endpoints`.
pub fn channel(
    endpoints: &Endpoints,
    tls: Option<&TlsSettings>,
) -> Result<GrpcChannel, ConfigError> {
    let endpoints = endpoints
        .uris()
        .iter()
        .map(|uri| {
            let endpoint = Endpoint::from(uri.clone())
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10));
            match tls {
                Some(tls) if uri.scheme_str() == Some("https") => endpoint
                    .tls_config(crate::tls::client_config(tls))
                    .map_err(|error| ConfigError::from_display(format!("TLS for {uri}: {error}"))),
                _ => Ok(endpoint),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let channel = match endpoints.as_slice() {
        [one] => one.connect_lazy(),
        _ => Channel::balance_list(endpoints.into_iter()),
    };
    Ok(tower_layer::Layer::layer(&PropagateLayer, channel))
}

/// How often a token file is read again, so that a rotated token is picked up without a restart
/// (issuers and Kubernetes rotate tokens long before they expire).
const TOKEN_FILE_RECHECK: Duration = Duration::from_secs(30);

/// A service's own bearer token on its calls to other services (`authorization: Bearer …`), from
/// `dev` or from a file (`CROWDCRUNCH_SERVICE_TOKEN_FILE`) that is read again every 30 seconds.
/// Cheap to clone; `Debug` never prints the token.
#[derive(Clone)]
pub struct ServiceToken(Arc<RwLock<HeaderValue>>);

impl ServiceToken {
    /// This token, as it is.
    pub fn new(token: &str) -> Result<Self, ConfigError> {
        Ok(Self(Arc::new(RwLock::new(authorization(token)?))))
    }

    /// The token in the file at `path`, read now (a missing or empty file is an error at start),
    /// then again periodically while the token is in use (needs a Tokio runtime).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let token = Self::new(&read_token(path)?)?;
        tokio::runtime::Handle::try_current()
            .map_err(|_| {
                ConfigError::from_display("reading a service token file needs a Tokio runtime")
            })?
            .spawn(reread(Arc::downgrade(&token.0), path.to_owned()));
        Ok(token)
    }

    /// The `authorization` value.
    pub fn authorization(&self) -> HeaderValue {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceToken(..)")
    }
}

fn authorization(token: &str) -> Result<HeaderValue, ConfigError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.trim())).map_err(|_| {
        ConfigError::from_display("a service token must be visible ASCII without line breaks")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn read_token(path: &Path) -> Result<String, ConfigError> {
    let token = std::fs::read_to_string(path).map_err(|error| {
        ConfigError::from_display(format_args!(
            "cannot read the service token file {}: {error}",
            path.display()
        ))
    })?;
    if token.trim().is_empty() {
        return Err(ConfigError::from_display(format_args!(
            "the service token file {} is empty",
            path.display()
        )));
    }
    Ok(token)
}

/// Reads the token file again every [`TOKEN_FILE_RECHECK`] while the token is in use; a file
/// that cannot be read keeps the token there is (and says so).
async fn reread(token: Weak<RwLock<HeaderValue>>, path: PathBuf) {
    loop {
        tokio::time::sleep(TOKEN_FILE_RECHECK).await;
        let Some(token) = token.upgrade() else {
            return;
        };
        match read_token(&path).and_then(|fresh| authorization(&fresh)) {
            Ok(fresh) => *token.write().unwrap_or_else(PoisonError::into_inner) = fresh,
            Err(error) => tracing::warn!(%error, "keeping the service token there is"),
        }
    }
}

/// The deadline of a call from one service to another unless the caller chooses another.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// `message` as a request with the standard [`CALL_DEADLINE`] (sent as `grpc-timeout`).
pub fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_DEADLINE);
    request
}

/// The failure of a call to another service, as the calling service reports it.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The service did not answer (it was down, slow, restarting or overloaded); the client may
    /// retry with the same request.
    #[error("{service} is unavailable: {message}")]
    Unavailable {
        /// Which service.
        service: &'static str,
        /// What it said.
        message: String,
    },
    /// The service refused in a way the client cannot fix.
    #[error("{service} failed: {status}")]
    Failed {
        /// Which service.
        service: &'static str,
        /// What it answered.
        status: tonic::Status,
    },
}

impl UpstreamError {
    /// The failure of a call to `service`: [`Unavailable`](Self::Unavailable) if
    /// [transient](is_transient), [`Failed`](Self::Failed) otherwise.
    pub fn from_status(service: &'static str, status: tonic::Status) -> Self {
        if is_transient(&status) {
            Self::Unavailable {
                service,
                message: status.message().to_owned(),
            }
        } else {
            Self::Failed { service, status }
        }
    }

    /// The status a client sees: UNAVAILABLE (`DEPENDENCY_UNAVAILABLE`) telling it to retry with
    /// `same_request` (how this service names what to resend), or INTERNAL, which is logged.
    pub fn into_status(self, domain: &str, same_request: &str) -> tonic::Status {
        match self {
            Self::Unavailable { service, .. } => crate::status::with_reason(
                tonic::Code::Unavailable,
                domain,
                "DEPENDENCY_UNAVAILABLE",
                format!("{service} is unavailable; retry with {same_request}"),
            ),
            Self::Failed { .. } => crate::status::internal(domain, &self),
        }
    }
}

/// Whether a failed call may succeed if tried again later (the service was down, slow, restarting
/// or overloaded), as opposed to a final answer about the request itself.
pub fn is_transient(status: &tonic::Status) -> bool {
    use tonic::Code;
    !matches!(
        status.code(),
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Unauthenticated
    )
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};
    use tonic_types::StatusExt as _;

    use super::*;

    #[test]
    fn a_transient_failure_asks_for_a_retry_and_a_final_one_is_internal() {
        let cases = [
            (
                Code::Unavailable,
                Code::Unavailable,
                "DEPENDENCY_UNAVAILABLE",
            ),
            (
                Code::DeadlineExceeded,
                Code::Unavailable,
                "DEPENDENCY_UNAVAILABLE",
            ),
            (Code::InvalidArgument, Code::Internal, "INTERNAL"),
            (Code::FailedPrecondition, Code::Internal, "INTERNAL"),
        ];
        for (answered, code, reason) in cases {
            let status = UpstreamError::from_status("billing", Status::new(answered, "no"))
                .into_status("test.crowdcrunch.dev", "the same request id");
            assert_eq!(status.code(), code, "{answered:?}");
            let info = status.get_details_error_info().expect("an ErrorInfo");
            assert_eq!(info.reason, reason, "{answered:?}");
            assert_eq!(info.domain, "test.crowdcrunch.dev");
        }
        let status = UpstreamError::from_status("billing", Status::unavailable("down"))
            .into_status("test.crowdcrunch.dev", "the same request id");
        assert_eq!(
            status.message(),
            "billing is unavailable; retry with the same request id"
        );
    }
}
