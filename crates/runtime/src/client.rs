//! gRPC client channels to other services: a list of endpoints balanced client-side, connected
//! lazily (a backend that is down yields UNAVAILABLE, never a start-up failure), with TLS when
//! configured and the trace context on every call.

use std::time::Duration;

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
