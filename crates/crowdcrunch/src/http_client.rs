//! A small HTTP/1.1 client (hyper, pooled keep-alive connections) for `smoke` and `load`.

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A pooled client for `http://` URLs.
#[derive(Clone)]
pub struct HttpClient(Client<HttpConnector, Full<Bytes>>);

impl HttpClient {
    /// A client whose pool keeps up to `idle` connections per host.
    pub fn new(idle: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self(
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(idle)
                .build(connector),
        )
    }

    /// POSTs `body` as JSON, with `authorization` when given; answers the status and the body.
    pub async fn post_json(
        &self,
        uri: &http::Uri,
        body: Bytes,
        authorization: Option<&http::HeaderValue>,
    ) -> anyhow::Result<(http::StatusCode, Bytes)> {
        let mut headers = http::HeaderMap::new();
        if let Some(authorization) = authorization {
            headers.insert(http::header::AUTHORIZATION, authorization.clone());
        }
        self.post_json_with(uri, body, &headers).await
    }

    /// POSTs `body` as JSON with these extra `headers` (which replace the defaults they name);
    /// answers the status and the body.
    pub async fn post_json_with(
        &self,
        uri: &http::Uri,
        body: Bytes,
        headers: &http::HeaderMap,
    ) -> anyhow::Result<(http::StatusCode, Bytes)> {
        let mut request = http::Request::post(uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::ACCEPT,
                "application/graphql-response+json, application/json;q=0.9",
            )
            .body(Full::new(body))?;
        for name in headers.keys() {
            request.headers_mut().remove(name);
        }
        for (name, value) in headers {
            request.headers_mut().append(name, value.clone());
        }
        self.send(request).await
    }

    /// GETs `uri`; answers the status and the body.
    pub async fn get(&self, uri: &http::Uri) -> anyhow::Result<(http::StatusCode, Bytes)> {
        self.send(http::Request::get(uri.clone()).body(Full::new(Bytes::new()))?)
            .await
    }

    async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> anyhow::Result<(http::StatusCode, Bytes)> {
        let response = self.0.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// The `http://host:port` of a URL, to reach `/healthz` beside `/graphql`.
pub fn origin(uri: &http::Uri) -> anyhow::Result<String> {
    let scheme = uri.scheme_str().unwrap_or("http");
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("{uri} has no host"))?;
    anyhow::ensure!(scheme == "http", "{uri}: only http:// URLs are supported");
    Ok(format!("{scheme}://{authority}"))
}
