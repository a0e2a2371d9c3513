//! Admission: the server layer that identifies every call and applies its RPC's rule before the
//! call reaches the service, so that no handler runs for a caller its rule refuses.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use rustls::pki_types::CertificateDer;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};
use tower_layer::Layer;
use tower_service::Service;

use super::{AccessRules, Admission, Caller};
use crate::auth::{DOMAIN, Identity, Verifier};

/// The services every server answers for anyone: health (probes) and reflection (grpcurl).
const OPEN_SERVICES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// What admits a server's calls: the rules of its RPCs and the verifier of its callers' tokens.
/// A server cannot be built without one.
#[derive(Debug, Clone)]
pub struct Gatekeeper {
    rules: Arc<AccessRules>,
    verifier: Verifier,
}

impl Gatekeeper {
    /// Admission by `rules`, with callers identified by `verifier`.
    pub fn new(rules: AccessRules, verifier: Verifier) -> Self {
        Self {
            rules: Arc::new(rules),
            verifier,
        }
    }

    /// The caller of a call to `path`, or the refusal the client gets: UNIMPLEMENTED for an RPC
    /// the rules do not know (deny by default), the token's refusal for a bad token, and
    /// UNAUTHENTICATED or PERMISSION_DENIED (each with `ErrorInfo`) where the rule says so.
    /// `None` for health and reflection, which are open.
    pub async fn admit(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        client_certificate: Option<&[u8]>,
    ) -> Result<Option<Caller>, Status> {
        if OPEN_SERVICES.iter().any(|open| path.starts_with(open)) {
            return Ok(None);
        }
        let Some(rule) = self.rules.rule(path) else {
            return Err(Status::unimplemented(format!("{path} is not an RPC here")));
        };
        let identity = self
            .verifier
            .identify_call(headers, client_certificate)
            .await?;
        match rule.admits(&identity) {
            Admission::Admitted => Ok(Some(Caller::new(identity))),
            Admission::Unauthenticated => Err(crate::status::with_reason(
                Code::Unauthenticated,
                DOMAIN,
                "UNAUTHENTICATED",
                format!(
                    "{} needs a caller with an identity: {}",
                    rule.rpc,
                    rule.required()
                ),
            )),
            Admission::Forbidden => Err(forbidden(&rule.rpc, &rule.required(), &identity)),
        }
    }
}

/// PERMISSION_DENIED for `identity` on `rpc`, naming what it needs.
fn forbidden(rpc: &str, required: &str, identity: &Identity) -> Status {
    let metadata = HashMap::from([
        ("rpc".to_owned(), rpc.to_owned()),
        ("required".to_owned(), required.to_owned()),
    ]);
    Status::with_error_details(
        Code::PermissionDenied,
        format!("{identity} may not call {rpc}: it needs {required}"),
        ErrorDetails::with_error_info("PERMISSION_DENIED", DOMAIN, metadata),
    )
}

/// The server layer of [`Gatekeeper`]: an admitted call goes on with its [`Caller`] in the
/// request's extensions; a refused one is answered here.
#[derive(Debug, Clone)]
pub struct AdmissionLayer(Gatekeeper);

impl AdmissionLayer {
    /// The layer admitting calls with `gatekeeper`.
    pub fn new(gatekeeper: Gatekeeper) -> Self {
        Self(gatekeeper)
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = AdmitCalls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdmitCalls {
            inner,
            gatekeeper: self.0.clone(),
        }
    }
}

/// The service made by [`AdmissionLayer`].
#[derive(Debug, Clone)]
pub struct AdmitCalls<S> {
    inner: S,
    gatekeeper: Gatekeeper,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AdmitCalls<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this call; the fresh one waits for the next.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let gatekeeper = self.gatekeeper.clone();
        Box::pin(async move {
            let certificates = client_certificates(request.extensions());
            let leaf = certificates
                .as_deref()
                .and_then(|chain| chain.first())
                .map(|der| der.as_ref());
            let admitted = gatekeeper
                .admit(request.uri().path(), request.headers(), leaf)
                .await;
            match admitted {
                Ok(caller) => {
                    if let Some(caller) = caller {
                        request.extensions_mut().insert(caller);
                    }
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// The certificates the client presented over mutual TLS, leaf first (tonic records them per
/// connection).
fn client_certificates(extensions: &http::Extensions) -> Option<Arc<Vec<CertificateDer<'static>>>> {
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()
}
