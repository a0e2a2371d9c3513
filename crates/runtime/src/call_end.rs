//! How a gRPC call ended, as its response body shows it: the `grpc-status` of the trailers (or of
//! a trailers-only response), a failed body, or a caller that went away first. The server's
//! metrics and the client's spans learn the code the same way.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tonic::Code;

/// Who is told, once, how a call ended.
pub trait OnCallEnd {
    /// The call ended with `code`.
    fn call_ended(self, code: Code);
}

impl OnCallEnd for tracing::Span {
    fn call_ended(self, code: Code) {
        crate::context::record_code(&self, code);
    }
}

/// The codes a body reports when its trailers say nothing.
#[derive(Debug, Clone, Copy)]
pub struct EndCodes {
    /// The body ended, or its trailers came, without a `grpc-status`.
    pub missing: Code,
    /// The body failed.
    pub failed: Code,
}

/// The `grpc-status` in `headers` (trailers, or the headers of a trailers-only response).
pub(crate) fn status_code(headers: &HeaderMap) -> Option<Code> {
    let value = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(Code::from_i32(value))
}

pin_project_lite::pin_project! {
    /// A response body that tells its watcher how the call ended when the trailers pass, the body
    /// fails or ends, or CANCELLED when it is dropped before its end (the caller went away). A
    /// body whose call already ended (a trailers-only response) has no watcher.
    pub struct CallEndBody<B, W: OnCallEnd> {
        #[pin]
        inner: B,
        watcher: Option<W>,
        codes: EndCodes,
    }

    impl<B, W: OnCallEnd> PinnedDrop for CallEndBody<B, W> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(watcher) = this.project().watcher.take() {
                watcher.call_ended(Code::Cancelled);
            }
        }
    }
}

impl<B, W: OnCallEnd> CallEndBody<B, W> {
    /// `inner`, watched by `watcher` (none: the call already ended).
    pub(crate) fn new(inner: B, watcher: Option<W>, codes: EndCodes) -> Self {
        Self {
            inner,
            watcher,
            codes,
        }
    }
}

impl<B: Body, W: OnCallEnd> Body for CallEndBody<B, W> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame
                .trailers_ref()
                .map(|trailers| status_code(trailers).unwrap_or(this.codes.missing)),
            Poll::Ready(Some(Err(_))) => Some(this.codes.failed),
            Poll::Ready(None) => Some(this.codes.missing),
            Poll::Pending => None,
        };
        if let Some(code) = code
            && let Some(watcher) = this.watcher.take()
        {
            watcher.call_ended(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
