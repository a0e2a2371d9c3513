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
