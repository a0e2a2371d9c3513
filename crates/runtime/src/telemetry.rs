//! Logs and traces: `tracing` with pretty or JSON output, bridged to OpenTelemetry so that every
//! span has a W3C trace id that crosses gRPC hops, and exported over OTLP only when a collector is
//! configured, sampled as `OTEL_TRACES_SAMPLER` says. A trace is continued from W3C trace context,
//! else from B3 (Istio's Zipkin tracer). Each span is exported under the resource of the service
//! it belongs to ([`ServiceName`]), also when one process (`dev`) runs them all.

mod b3;

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::{Span as _, TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter, SpanProcessor};
use tracing::Subscriber;
use tracing::dispatcher::{Dispatch, WeakDispatch};
use tracing_subscriber::filter::{Filtered, LevelFilter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, SamplerSettings, TelemetrySettings, TraceSampler};

/// Telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global subscriber was already installed.
    #[error("telemetry was already initialised: {0}")]
    AlreadyInitialised(#[from] tracing_subscriber::util::TryInitError),
    /// The log filter does not parse.
    #[error("bad log filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
}

/// Keeps the trace pipeline alive; dropping it flushes the spans still buffered.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::debug!(%error, "trace provider shutdown");
        }
    }
}

/// Installs the global subscriber and trace propagator for the process of `process` (a service,
/// `edge`, or `dev` for all of them): spans that belong to no service are exported as its
/// (`service.name` `crowdcrunch-<process>`).
pub fn init(
    process: ServiceName,
    settings: &TelemetrySettings,
) -> Result<TelemetryGuard, TelemetryError> {
    let provider = tracer_provider(process, settings)?;
    // The OpenTelemetry SDK logs its own life cycle at info; keep that out unless asked for.
    let filter = EnvFilter::try_new(format!(
        "opentelemetry=warn,opentelemetry_sdk=warn,{}",
        settings.log_filter
    ))?;
    let dispatch = DispatchSlot::default();
    let fmt = match settings.log_format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_target(false)
            // Colours are escape codes: a file or a pipe gets plain text.
            .with_ansi(std::io::stdout().is_terminal())
            .boxed(),
        LogFormat::Json => json_lines(dispatch.clone(), std::io::stdout).boxed(),
    };
    tracing_subscriber::registry()
        .with(dispatch.layer())
        .with(
            span_bridge(provider.tracer("crowdcrunch"))
                // Spans and events at info and above, whatever is logged: unfiltered, this layer
                // would enable every library's debug and trace events (h2, hyper, tonic) and
                // record each one on its span.
                .with_filter(LevelFilter::INFO),
        )
        .with(fmt.with_filter(filter))
        .try_init()?;
    // W3C after B3: each replaces what the one before found, so W3C wins when both came.
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(b3::B3Propagator),
        Box::new(TraceContextPropagator::new()),
    ]));
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(TelemetryGuard { provider })
}

/// The layer that makes each `tracing` span an OpenTelemetry span of `tracer`, doing only what
/// this project reads. Nothing here reads the OpenTelemetry context of the thread
/// (`Context::current()`): trace context is injected from the `tracing` span itself
/// ([`crate::context::inject_current`]). So entering a span does not attach its context to the
/// thread, nor time how long the span was busy and idle (`busy_ns`, `idle_ns`), and a span does
/// not carry the thread it started on: each of those cost work on every poll of an instrumented
/// future or on every span, for attributes no dashboard here reads.
fn span_bridge<S>(
    tracer: opentelemetry_sdk::trace::Tracer,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_context_activation(false)
        .with_tracked_inactivity(false)
        .with_threads(false)
}

/// The dispatch the subscriber was registered as, for the JSON lines to find the OpenTelemetry
/// context of the span an event was written in (tracing-opentelemetry keeps it there).
#[derive(Clone, Default)]
struct DispatchSlot(Arc<OnceLock<WeakDispatch>>);

impl DispatchSlot {
    /// The slot as a layer that wants no span or event. Unfiltered, a layer's interest is
    /// "always": every callsite of every library (h2's and hyper's trace spans and events, per
    /// frame and per stream) would be built and handed to the registry on every call, whatever
    /// the other layers' filters say, and the global level hint would be TRACE. A layer that
    /// filters everything out leaves those callsites disabled, at the cost of a branch.
    fn layer<S>(&self) -> Filtered<Self, LevelFilter, S>
    where
        S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    {
        self.clone().with_filter(LevelFilter::OFF)
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for DispatchSlot {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.0.set(subscriber.downgrade());
    }
}

/// One JSON object per line: `timestamp`, `level`, `target`, one `message` and the event's fields,
/// `trace_id` and `span_id` of the span it was written in (when there is one), and the fields of
/// the spans it is in (`request_id`, `rpc.method`, ...) under `span`.
fn json_lines<S, W>(dispatch: DispatchSlot, writer: W) -> json_subscriber::JsonLayer<S, W>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + 'static,
{
    let mut layer = json_subscriber::JsonLayer::new(writer);
    layer
        .with_timer("timestamp", tracing_subscriber::fmt::time::SystemTime)
        .with_level("level")
        .with_target("target")
        .with_flattened_event()
        .with_flattened_span_fields("span");
    layer.add_multiple_dynamic_fields(move |_event, context, writer| {
        let Some(span) = context.lookup_current() else {
            return;
        };
        let Some(dispatch) = dispatch.0.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        let Some(otel) = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch) else {
            return;
        };
        let span = otel.span();
        let ids = span.span_context();
        if ids.is_valid() {
            let _ = writer.write_field("trace_id", ids.trace_id().to_string());
            let _ = writer.write_field("span_id", ids.span_id().to_string());
        }
    });
    layer
}

/// Telemetry for test binaries: spans and trace ids always, log output only when `TEST_LOG` is set.
/// Safe to call from every test; the first call wins.
pub fn init_for_tests() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let log_filter = if std::env::var_os("TEST_LOG").is_some() {
            "info,sqlx=warn"
        } else {
            "off"
        };
        let settings = TelemetrySettings {
            log_format: LogFormat::Pretty,
            log_filter: log_filter.to_owned(),
            otlp_endpoint: None,
            sampler: SamplerSettings::default(),
        };
        match init(ServiceName::new("test"), &settings) {
            // Keep the provider for the whole test process.
            Ok(guard) => std::mem::forget(guard),
            Err(error) => eprintln!("test telemetry not installed: {error}"),
        }
    });
}

/// Rate-limits log lines that repeat one cause: the first line about a cause is written, then at
/// most one per interval, saying how many it held back meanwhile. In an outage, a thousand
/// failing requests a second make one warning a few seconds, not a thousand.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    causes: Mutex<HashMap<String, Throttled>>,
}

#[derive(Debug)]
struct Throttled {
    written: Instant,
    held_back: u64,
}

/// Causes remembered at most; more (an unbounded variety of causes) starts the memory afresh.
const THROTTLED_CAUSES: usize = 1024;

impl LogThrottle {
    /// At most one line per `interval` for each cause.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            causes: Mutex::default(),
        }
    }

    /// Whether a line about `cause` may be written now: `Some(n)` with the lines held back since
    /// the last one written, or `None` to hold this one back.
    pub fn admit(&self, cause: &str) -> Option<u64> {
        let now = Instant::now();
        let mut causes = self
            .causes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(throttled) = causes.get_mut(cause) {
            if now.duration_since(throttled.written) < self.interval {
                throttled.held_back += 1;
                return None;
            }
            let held_back = std::mem::take(&mut throttled.held_back);
            throttled.written = now;
            return Some(held_back);
        }
        if causes.len() >= THROTTLED_CAUSES {
            causes.clear();
        }
        causes.insert(
            cause.to_owned(),
            Throttled {
                written: now,
                held_back: 0,
            },
        );
        Some(0)
    }
}

/// `error` and its causes in one line, `a: b: c`, each cause once: many errors already end with
/// their cause's message (thiserror's `{0}` beside `#[from]`), and would say it twice.
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

fn tracer_provider(
    process: ServiceName,
    settings: &TelemetrySettings,
) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(process.resource_name())
        .build();
    // Spans always get real ids (so trace context propagates and events carry trace ids), also
    // when they are not sampled; they leave the process only when a collector is set.
    let builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler(settings.sampler))
        .with_span_processor(TagService);
    let builder = match &settings.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            builder.with_batch_exporter(PerServiceResource::new(exporter))
        }
        None => builder,
    };
    Ok(builder.build())
}

/// The SDK's sampler for `settings`, as the specification defines `OTEL_TRACES_SAMPLER`.
fn sampler(settings: SamplerSettings) -> Sampler {
    let parent_based = |root| Sampler::ParentBased(Box::new(root));
    let ratio = Sampler::TraceIdRatioBased(settings.ratio);
    match settings.sampler {
        TraceSampler::AlwaysOn => Sampler::AlwaysOn,
        TraceSampler::AlwaysOff => Sampler::AlwaysOff,
        TraceSampler::TraceIdRatio => ratio,
        TraceSampler::ParentBasedAlwaysOn => parent_based(Sampler::AlwaysOn),
        TraceSampler::ParentBasedAlwaysOff => parent_based(Sampler::AlwaysOff),
        TraceSampler::ParentBasedTraceIdRatio => parent_based(ratio),
    }
}

/// The service a span belongs to, carried in the OpenTelemetry context from the span that opens
/// the service's part of a trace (its gRPC server span, the edge's GraphQL span, a background
/// task's root span: see [`crate::context::continue_trace`]) to every span under it. Each span is
/// exported under the resource `service.name` = `crowdcrunch-<name>` of its service, so `dev`,
/// one process with every service, is told apart as a deployment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceName(&'static str);

impl ServiceName {
    /// The service `name` (`catalog`, `edge`).
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    /// The service that serves the gRPC service `full_name`: its package names it
    /// (`shop.catalog.v1.CatalogService` → `catalog`).
    pub fn of_grpc_service(full_name: &'static str) -> Self {
        Self(full_name.split('.').nth(1).unwrap_or(full_name))
    }

    /// Its `service.name`: `crowdcrunch-catalog`.
    pub fn resource_name(self) -> String {
        resource_name(self.0)
    }
}

fn resource_name(service: &str) -> String {
    format!("crowdcrunch-{service}")
}

/// The span attribute that names a span's service between [`TagService`] and
/// [`PerServiceResource`] (which removes it: the resource says it).
const SERVICE_ATTRIBUTE: &str = "crowdcrunch.service";

/// Tags each span with the [`ServiceName`] of its context when it starts.
#[derive(Debug)]
struct TagService;

impl SpanProcessor for TagService {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        if let Some(ServiceName(service)) = cx.get::<ServiceName>() {
            span.set_attribute(KeyValue::new(SERVICE_ATTRIBUTE, *service));
        }
    }

    fn on_end(&self, _span: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// An exporter that sends each service's spans under that service's resource, and untagged spans
/// under the process's.
#[derive(Debug)]
struct PerServiceResource<E> {
    // Exports never overlap (the SDK's contract); the lock only lets one resource be set per
    // group of the batch.
    inner: tokio::sync::Mutex<E>,
    process: Resource,
}

impl<E> PerServiceResource<E> {
    fn new(inner: E) -> Self {
        Self {
            inner: tokio::sync::Mutex::new(inner),
            process: Resource::builder_empty().build(),
        }
    }

    fn resource(&self, service: Option<&str>) -> Resource {
        let Some(service) = service else {
            return self.process.clone();
        };
        Resource::builder_empty()
            .with_attributes(
                self.process
                    .iter()
                    .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
            )
            .with_service_name(resource_name(service))
            .build()
    }
}

impl<E: SpanExporter> SpanExporter for PerServiceResource<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut by_service: BTreeMap<Option<String>, Vec<SpanData>> = BTreeMap::new();
        for mut span in batch {
            let tag = span
                .attributes
                .iter()
                .position(|attribute| attribute.key.as_str() == SERVICE_ATTRIBUTE);
            let service = tag.map(|index| span.attributes.remove(index).value.to_string());
            by_service.entry(service).or_default().push(span);
        }
        let mut inner = self.inner.lock().await;
        let mut result = Ok(());
        for (service, spans) in by_service {
            inner.set_resource(&self.resource(service.as_deref()));
            if let Err(error) = inner.export(spans).await {
                result = Err(error);
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner
            .try_lock()
            .map_err(|_| OTelSdkError::InternalFailure("an export is under way".to_owned()))?
            .shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner
            .try_lock()
            .map_err(|_| OTelSdkError::InternalFailure("an export is under way".to_owned()))?
            .force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.process = resource.clone();
        self.inner.get_mut().set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::{DispatchSlot, LogThrottle, cause_chain, json_lines, span_bridge};

    #[test]
    fn a_repeated_cause_is_written_once_per_interval_with_what_was_held_back() {
        let throttle = LogThrottle::new(std::time::Duration::from_millis(200));
        assert_eq!(throttle.admit("backend-a UNAVAILABLE"), Some(0));
        for _ in 0..999 {
            assert_eq!(throttle.admit("backend-a UNAVAILABLE"), None);
        }
        assert_eq!(
            throttle.admit("backend-b UNAVAILABLE"),
            Some(0),
            "another cause has its own budget"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert_eq!(throttle.admit("backend-a UNAVAILABLE"), Some(999));
        assert_eq!(throttle.admit("backend-a UNAVAILABLE"), None);
    }

    /// A log destination the test reads back.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_json_line_has_one_message_and_the_ids_of_its_trace_and_span() {
        let lines = Lines::default();
        let writer = lines.clone();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let dispatch = DispatchSlot::default();
        let subscriber = tracing_subscriber::registry()
            .with(dispatch.layer())
            .with(span_bridge(provider.tracer("test")))
            .with(json_lines(dispatch, move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(port = 80, "outside any request");
            let span = tracing::info_span!("grpc", request_id = "req-1");
            let _entered = span.enter();
            tracing::warn!(reason = "a reason", "inside a request");
        });
        let text = String::from_utf8(lines.0.lock().expect("the lines").clone()).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in &lines {
            assert_eq!(line.matches("\"message\":").count(), 1, "{line}");
        }
        let outside: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
        assert_eq!(outside["message"], "outside any request");
        assert_eq!(outside["port"], 80);
        assert!(outside.get("trace_id").is_none(), "{outside}");
        let inside: serde_json::Value = serde_json::from_str(lines[1]).expect("JSON");
        assert_eq!(inside["message"], "inside a request");
        assert_eq!(inside["level"], "WARN");
        assert_eq!(inside["span"]["request_id"], "req-1");
        let hex = |value: &serde_json::Value, len: usize| {
            value
                .as_str()
                .is_some_and(|id| id.len() == len && id.chars().all(|c| c.is_ascii_hexdigit()))
        };
        assert!(hex(&inside["trace_id"], 32), "{inside}");
        assert!(hex(&inside["span_id"], 16), "{inside}");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start billing: {0}")]
    struct Start(#[from] Bind);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on 127.0.0.1:80: {source}")]
    struct Bind {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("billing failed")]
    struct Failed(#[source] Bind);

    #[test]
    fn a_cause_already_in_its_error_is_said_once() {
        let bind = || Bind {
            source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use"),
        };
        assert_eq!(
            cause_chain(&Start::from(bind())),
            "cannot start billing: cannot listen on 127.0.0.1:80: Address already in use"
        );
        assert_eq!(
            cause_chain(&Failed(bind())),
            "billing failed: cannot listen on 127.0.0.1:80: Address already in use"
        );
    }
}
