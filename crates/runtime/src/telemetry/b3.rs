//! B3 trace context on the way in: Istio's Zipkin tracer (Envoy) sends B3, either the single
//! `b3` header or the `x-b3-*` set, and may send no W3C `traceparent` at all. Extraction only:
//! the services send W3C, and Envoy's own B3 headers travel on unchanged as forwarded headers.

use std::sync::OnceLock;

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};

/// Extracts a B3 trace context: the single `b3` header
/// (`{trace id}-{span id}[-{sampling}[-{parent span id}]]`), else `x-b3-traceid`,
/// `x-b3-spanid`, `x-b3-sampled` and `x-b3-flags`. A 64-bit trace id is widened to 128 bits
/// with leading zeros; a debug flag counts as sampled, and so does a deferred decision (no
/// sampling state: Envoy traces the request and leaves recording to the application). Injects
/// nothing.
#[derive(Debug, Default)]
pub(crate) struct B3Propagator;

const SINGLE: &str = "b3";
const TRACE_ID: &str = "x-b3-traceid";
const SPAN_ID: &str = "x-b3-spanid";
const SAMPLED: &str = "x-b3-sampled";
const FLAGS: &str = "x-b3-flags";

impl B3Propagator {
    fn single(extractor: &dyn Extractor) -> Option<SpanContext> {
        let value = extractor.get(SINGLE)?.trim();
        let mut parts = value.split('-');
        let trace = trace_id(parts.next()?)?;
        let span = span_id(parts.next()?)?;
        let sampled = match parts.next() {
            None => true,
            Some(state) => sampling(state)?,
        };
        if let Some(parent) = parts.next() {
            span_id(parent)?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(remote(trace, span, sampled))
    }

    fn multiple(extractor: &dyn Extractor) -> Option<SpanContext> {
        let trace = trace_id(extractor.get(TRACE_ID)?.trim())?;
        let span = span_id(extractor.get(SPAN_ID)?.trim())?;
        let debug = extractor.get(FLAGS).map(str::trim) == Some("1");
        let sampled = match extractor.get(SAMPLED).map(str::trim) {
            None => true,
            Some("1" | "true") => true,
            Some("0" | "false") => debug,
            Some(_) => return None,
        };
        Some(remote(trace, span, sampled))
    }
}

impl TextMapPropagator for B3Propagator {
    fn inject_context(&self, _cx: &Context, _injector: &mut dyn Injector) {}

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        Self::single(extractor)
            .or_else(|| Self::multiple(extractor))
            .map_or_else(|| cx.clone(), |span| cx.with_remote_span_context(span))
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: OnceLock<Vec<String>> = OnceLock::new();
        FieldIter::new(FIELDS.get_or_init(|| {
            [SINGLE, TRACE_ID, SPAN_ID, SAMPLED, FLAGS]
                .map(str::to_owned)
                .to_vec()
        }))
    }
}

fn lower_hex(text: &str, lengths: &[usize]) -> bool {
    lengths.contains(&text.len())
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

fn trace_id(text: &str) -> Option<TraceId> {
    if !lower_hex(text, &[16, 32]) {
        return None;
    }
    let id = TraceId::from_hex(text).ok()?;
    (id != TraceId::INVALID).then_some(id)
}

fn span_id(text: &str) -> Option<SpanId> {
    if !lower_hex(text, &[16]) {
        return None;
    }
    let id = SpanId::from_hex(text).ok()?;
    (id != SpanId::INVALID).then_some(id)
}

/// The single header's sampling state: `1` sampled, `d` debug (sampled), `0` not sampled.
fn sampling(state: &str) -> Option<bool> {
    match state {
        "1" | "d" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

fn remote(trace_id: TraceId, span_id: SpanId, sampled: bool) -> SpanContext {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanContext::new(trace_id, span_id, flags, true, TraceState::default())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::{SpanContext, TraceContextExt as _};

    use super::B3Propagator;

    fn extract(headers: &[(&str, &str)]) -> Option<SpanContext> {
        let headers: HashMap<String, String> = headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let context = B3Propagator.extract(&headers);
        let span = context.span().span_context().clone();
        span.is_valid().then_some(span)
    }

    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";

    #[test]
    fn the_single_header_and_the_multiple_headers_name_the_same_remote_parent() {
        let single = format!("{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90");
        let cases: [&[(&str, &str)]; 3] = [
            &[("b3", &single)],
            &[("b3", &format!("{TRACE}-{SPAN}"))],
            &[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1"),
            ],
        ];
        for headers in cases {
            let span = extract(headers).unwrap_or_else(|| panic!("{headers:?}"));
            assert_eq!(span.trace_id().to_string(), TRACE, "{headers:?}");
            assert_eq!(span.span_id().to_string(), SPAN, "{headers:?}");
            assert!(span.is_remote() && span.is_sampled(), "{headers:?}");
        }
    }

    #[test]
    fn sampling_states_and_short_trace_ids_are_read() {
        let denied = extract(&[("b3", &format!("{TRACE}-{SPAN}-0"))]).expect("a context");
        assert!(!denied.is_sampled());
        let debug = extract(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
            ("x-b3-flags", "1"),
        ])
        .expect("a context");
        assert!(debug.is_sampled());
        let short = extract(&[("b3", &format!("64fe8b2a57d3eff7-{SPAN}-d"))]).expect("a context");
        assert_eq!(
            short.trace_id().to_string(),
            "000000000000000064fe8b2a57d3eff7"
        );
        assert!(short.is_sampled());
    }

    #[test]
    fn what_is_not_a_b3_context_is_ignored() {
        for headers in [
            &[("b3", "0")][..],
            &[("b3", &format!("{TRACE}-{SPAN}-x"))],
            &[("b3", &format!("{TRACE}-0000000000000000-1"))],
            &[("b3", &format!("{}-{SPAN}-1", "0".repeat(32)))],
            &[("b3", &format!("{TRACE}-{SPAN}-1-nothex-extra"))],
            &[("x-b3-traceid", TRACE)],
            &[("x-b3-traceid", "XYZ"), ("x-b3-spanid", SPAN)],
        ] {
            assert!(extract(headers).is_none(), "{headers:?}");
        }
    }
}
