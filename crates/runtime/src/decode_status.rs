//! A request body that is not valid protobuf is the caller's error, INVALID_ARGUMENT (issue 14
//! §7), on every service a server mounts. Our generated servers decode with `RequestCodec`
//! (`crates/proto`), which says so itself; the standard ones (health, reflection) decode with
//! tonic's `ProstCodec`, which answers INTERNAL. [`DecodeStatusLayer`] rewrites that answer.
//!
//! It reads response headers only: tonic refuses a unary or server-streaming request that does
//! not decode before any handler runs, with a trailers-only response (`grpc-status` in the
//! headers; tonic `src/server/grpc.rs`, `Grpc::unary` and `Grpc::server_streaming` through
//! `map_response` and `Status::into_http`). A streaming request's decode failure reaches the
//! handler instead, after the headers went out; tonic-reflection's bidi `ServerReflectionInfo`
//! then ends its stream with OK, which no layer can tell from a finished stream.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response};
use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;

use crate::call_end::status_code;

/// The start of the `grpc-message` of a request that does not decode, as tonic writes it:
/// tonic-prost's `ProstDecoder` answers `Status::internal(error.to_string())`
/// (`from_decode_error` in tonic-prost `src/codec.rs`), prost's `DecodeError` displays as
/// `failed to decode Protobuf message: ...` (prost `src/error.rs`), and `Status::add_header`
/// percent-encodes its spaces (`ENCODING_SET` in tonic `src/status.rs`).
const DECODE_FAILURE_MESSAGE_PREFIX: &[u8] = b"failed%20to%20decode%20Protobuf%20message:";

/// Layer turning tonic's INTERNAL for a request body that does not decode into INVALID_ARGUMENT,
/// with the same message.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeStatusLayer;

impl<S> Layer<S> for DecodeStatusLayer {
    type Service = DecodeStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeStatus { inner }
    }
}

/// The service made by [`DecodeStatusLayer`].
#[derive(Clone, Debug)]
pub struct DecodeStatus<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for DecodeStatus<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = DecodeStatusFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        DecodeStatusFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`DecodeStatus`].
    pub struct DecodeStatusFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, B, E> Future for DecodeStatusFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = ready!(self.project().inner.poll(cx))?;
        if is_decode_failure(&response) {
            response.headers_mut().insert(
                "grpc-status",
                HeaderValue::from(Code::InvalidArgument as i32),
            );
            // `Status::into_http` leaves the status in the extensions too: keep it truthful.
            if let Some(status) = response.extensions_mut().remove::<Status>() {
                response
                    .extensions_mut()
                    .insert(Status::with_details_and_metadata(
                        Code::InvalidArgument,
                        status.message(),
                        status.details().to_vec().into(),
                        status.metadata().clone(),
                    ));
            }
        }
        Poll::Ready(Ok(response))
    }
}

/// Whether `response` is tonic's trailers-only INTERNAL for a request that does not decode.
fn is_decode_failure<B>(response: &Response<B>) -> bool {
    let headers = response.headers();
    status_code(headers) == Some(Code::Internal)
        && headers.get("grpc-message").is_some_and(|message| {
            message
                .as_bytes()
                .starts_with(DECODE_FAILURE_MESSAGE_PREFIX)
        })
}
