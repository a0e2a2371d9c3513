//! Settings of the edge process: its HTTP limits, the cost of operations, the budgets of callers,
//! what it shows to the public and the deadline of its backend calls. They are read here because
//! only the runtime reads the environment; they are plain numbers, durations and origins, and
//! nothing here knows GraphQL.
//!
//! The defaults are production's: introspection, GraphiQL and field suggestions are off, no origin
//! may call from a browser and forwarded request ids and trace headers are not trusted. `dev`
//! switches the comforts on ([`EdgeSettings::development`]).

use std::time::Duration;

use crate::config::ConfigError;

/// Flags of `crowdcrunch serve edge` (each also read from a `CROWDCRUNCH_EDGE_*` variable).
#[derive(Debug, Clone, clap::Args)]
pub struct EdgeArgs {
    /// Deepest selection a query may nest (GraphiQL's introspection query needs 13).
    #[arg(long, env = "CROWDCRUNCH_EDGE_MAX_DEPTH", default_value_t = 15)]
    pub max_depth: usize,
    /// Most fields one operation may select, counting every field once.
    #[arg(long, env = "CROWDCRUNCH_EDGE_MAX_COMPLEXITY", default_value_t = 2000)]
    pub max_complexity: usize,
    /// Most aliases one document may use.
    #[arg(long, env = "CROWDCRUNCH_EDGE_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "CROWDCRUNCH_EDGE_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Largest GraphQL document accepted, in bytes, checked before it is parsed.
    #[arg(long, env = "CROWDCRUNCH_EDGE_MAX_DOCUMENT_BYTES", default_value_t = 32 * 1024)]
    pub max_document_bytes: usize,
    /// Most lexical tokens a GraphQL document may hold, checked before it is parsed.
    #[arg(long, env = "CROWDCRUNCH_EDGE_MAX_TOKENS", default_value_t = 5000)]
    pub max_tokens: usize,
    /// Largest page a connection returns; a larger `first` is coerced to it (AIP-158).
    #[arg(long, env = "CROWDCRUNCH_EDGE_MAX_PAGE_SIZE", default_value_t = 100)]
    pub max_page_size: i32,
    /// Highest static cost one operation may have: each field costs one, and a list multiplies
    /// what it selects by its page size (`first`, the ids of a batch get, a join's page).
    #[arg(long, env = "CROWDCRUNCH_EDGE_MAX_COST", default_value_t = 50_000)]
    pub max_cost: u64,
    /// Cost points each caller (the token's subject; the client address without one) may spend
    /// per minute; over it, HTTP 429 with `Retry-After`. 0 switches the budget off.
    #[arg(
        long,
        env = "CROWDCRUNCH_EDGE_COST_BUDGET_PER_MINUTE",
        default_value_t = 1_000_000
    )]
    pub cost_budget_per_minute: u64,
    /// Deadline of every backend call (a request's own deadline can only shorten it).
    #[arg(long, env = "CROWDCRUNCH_EDGE_BACKEND_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub backend_timeout: Duration,
    /// Overall deadline of one GraphQL request; what is left of it becomes the `grpc-timeout`
    /// of every backend call it makes.
    // Not `--request-timeout`: in `serve` that is the gRPC servers' own deadline.
    #[arg(id = "graphql_request_timeout", long = "graphql-request-timeout", value_name = "GRAPHQL_REQUEST_TIMEOUT", env = "CROWDCRUNCH_EDGE_REQUEST_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Time a client has to send a request's headers; a slower one is disconnected.
    #[arg(long, env = "CROWDCRUNCH_EDGE_HEADER_READ_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body; a slower one is disconnected.
    #[arg(long, env = "CROWDCRUNCH_EDGE_BODY_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,
    /// Time an idle keep-alive connection stays open.
    #[arg(long, env = "CROWDCRUNCH_EDGE_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Most client connections open at once; more wait in the kernel's backlog.
    #[arg(long, env = "CROWDCRUNCH_EDGE_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Most GraphQL requests served at once; more are shed with 503 and `Retry-After`.
    #[arg(
        long,
        env = "CROWDCRUNCH_EDGE_MAX_CONCURRENT_REQUESTS",
        default_value_t = 512
    )]
    pub max_concurrent_requests: usize,
    /// Time a WebSocket client has to send `connection_init` (graphql-transport-ws closes 4408).
    #[arg(long, env = "CROWDCRUNCH_EDGE_CONNECTION_INIT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub connection_init_timeout: Duration,
    /// Most subscriptions one WebSocket connection may hold open.
    #[arg(
        long,
        env = "CROWDCRUNCH_EDGE_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = 16
    )]
    pub max_subscriptions_per_connection: usize,
    /// Most subscriptions one caller may hold open over all their connections.
    #[arg(
        long,
        env = "CROWDCRUNCH_EDGE_MAX_SUBSCRIPTIONS_PER_CALLER",
        default_value_t = 64
    )]
    pub max_subscriptions_per_caller: usize,
    /// Origins that browsers may call the API from (CORS) and open its WebSocket from, as
    /// `scheme://host[:port]`, comma-separated. None by default.
    #[arg(long, env = "CROWDCRUNCH_EDGE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Whether the schema answers introspection (`__schema`, `__type`).
    #[arg(long, env = "CROWDCRUNCH_EDGE_INTROSPECTION", default_value_t = false, action = clap::ArgAction::Set)]
    pub introspection: bool,
    /// Whether GraphiQL is served at `/`.
    #[arg(long, env = "CROWDCRUNCH_EDGE_GRAPHIQL", default_value_t = false, action = clap::ArgAction::Set)]
    pub graphiql: bool,
    /// Whether validation errors suggest field names ("did you mean ...").
    #[arg(long, env = "CROWDCRUNCH_EDGE_FIELD_SUGGESTIONS", default_value_t = false, action = clap::ArgAction::Set)]
    pub field_suggestions: bool,
    /// Whether the edge sits behind a proxy it trusts (Istio's ingress gateway), whose
    /// `x-request-id`, `traceparent`, B3 and `x-forwarded-for` headers it then believes.
    #[arg(long, env = "CROWDCRUNCH_EDGE_TRUSTED_PROXY", default_value_t = false, action = clap::ArgAction::Set)]
    pub trusted_proxy: bool,
    /// Bytes of memory the caches of parsed and validated documents (and persisted queries)
    /// may hold, counted by the documents' text.
    #[arg(long, env = "CROWDCRUNCH_EDGE_DOCUMENT_CACHE_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub document_cache_bytes: usize,
}

impl EdgeArgs {
    /// Validates the flags.
    pub fn settings(&self) -> Result<EdgeSettings, ConfigError> {
        if self.max_page_size < 100 {
            return Err(ConfigError::from_display(
                "CROWDCRUNCH_EDGE_MAX_PAGE_SIZE must be at least 100",
            ));
        }
        let counts = [
            ("MAX_DEPTH", self.max_depth),
            ("MAX_COMPLEXITY", self.max_complexity),
            ("MAX_BODY_BYTES", self.max_body_bytes),
            ("MAX_DOCUMENT_BYTES", self.max_document_bytes),
            ("MAX_TOKENS", self.max_tokens),
            ("MAX_CONNECTIONS", self.max_connections),
            ("MAX_CONCURRENT_REQUESTS", self.max_concurrent_requests),
            (
                "MAX_SUBSCRIPTIONS_PER_CONNECTION",
                self.max_subscriptions_per_connection,
            ),
            (
                "MAX_SUBSCRIPTIONS_PER_CALLER",
                self.max_subscriptions_per_caller,
            ),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::from_display(format!(
                "CROWDCRUNCH_EDGE_{name} must be above zero"
            )));
        }
        if self.max_cost == 0 {
            return Err(ConfigError::from_display(
                "CROWDCRUNCH_EDGE_MAX_COST must be above zero",
            ));
        }
        let durations = [
            ("BACKEND_TIMEOUT", self.backend_timeout),
            ("REQUEST_TIMEOUT", self.request_timeout),
            ("HEADER_READ_TIMEOUT", self.header_read_timeout),
            ("BODY_READ_TIMEOUT", self.body_read_timeout),
            ("IDLE_TIMEOUT", self.idle_timeout),
            ("CONNECTION_INIT_TIMEOUT", self.connection_init_timeout),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, value)| value.is_zero()) {
            return Err(ConfigError::from_display(format!(
                "CROWDCRUNCH_EDGE_{name} must be longer than zero"
            )));
        }
        let allowed_origins = self
            .allowed_origins
            .iter()
            .map(|origin| origin.trim())
            .filter(|origin| !origin.is_empty())
            .map(Origin::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EdgeSettings {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            max_aliases: self.max_aliases,
            max_body_bytes: self.max_body_bytes,
            max_document_bytes: self.max_document_bytes,
            max_tokens: self.max_tokens,
            max_page_size: self.max_page_size,
            max_cost: self.max_cost,
            cost_budget_per_minute: self.cost_budget_per_minute,
            backend_timeout: self.backend_timeout,
            request_timeout: self.request_timeout,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            max_concurrent_requests: self.max_concurrent_requests,
            connection_init_timeout: self.connection_init_timeout,
            max_subscriptions_per_connection: self.max_subscriptions_per_connection,
            max_subscriptions_per_caller: self.max_subscriptions_per_caller,
            allowed_origins,
            introspection: self.introspection,
            graphiql: self.graphiql,
            field_suggestions: self.field_suggestions,
            trusted_proxy: self.trusted_proxy,
            document_cache_bytes: self.document_cache_bytes,
            access_log: false,
        })
    }
}

/// A browser origin, `scheme://host[:port]`, lower-cased as browsers send it in `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// Parses `scheme://host[:port]` (http or https, no path, no trailing slash).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let invalid = || {
            ConfigError::from_display(format!(
                "CROWDCRUNCH_EDGE_ALLOWED_ORIGINS: {text:?} is not an origin like https://shop.example.com"
            ))
        };
        let lower = text.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .ok_or_else(invalid)?;
        let well_formed = !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !well_formed {
            return Err(invalid());
        }
        Ok(Self(lower))
    }

    /// Whether the `Origin` header value `value` is this origin.
    pub fn matches(&self, value: &str) -> bool {
        self.0.eq_ignore_ascii_case(value)
    }

    /// The origin as written in `Origin` and `Access-Control-Allow-Origin`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validated settings of the edge (see [`EdgeArgs`] for what each means).
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Deepest selection.
    pub max_depth: usize,
    /// Most fields in one operation.
    pub max_complexity: usize,
    /// Most aliases in one document.
    pub max_aliases: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest document, in bytes, before parsing.
    pub max_document_bytes: usize,
    /// Most tokens in a document, before parsing.
    pub max_tokens: usize,
    /// Largest connection page.
    pub max_page_size: i32,
    /// Highest static cost of one operation.
    pub max_cost: u64,
    /// Cost points per caller per minute; 0 is no budget.
    pub cost_budget_per_minute: u64,
    /// Deadline of every backend call.
    pub backend_timeout: Duration,
    /// Overall deadline of one request.
    pub request_timeout: Duration,
    /// Time to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time to send a request's body.
    pub body_read_timeout: Duration,
    /// Time an idle keep-alive connection stays open.
    pub idle_timeout: Duration,
    /// Most open client connections.
    pub max_connections: usize,
    /// Most requests served at once before shedding.
    pub max_concurrent_requests: usize,
    /// Time to send `connection_init` on a WebSocket.
    pub connection_init_timeout: Duration,
    /// Most subscriptions per WebSocket connection.
    pub max_subscriptions_per_connection: usize,
    /// Most subscriptions per caller.
    pub max_subscriptions_per_caller: usize,
    /// Browser origins allowed (CORS and the WebSocket upgrade).
    pub allowed_origins: Vec<Origin>,
    /// Whether introspection answers.
    pub introspection: bool,
    /// Whether GraphiQL is served.
    pub graphiql: bool,
    /// Whether validation errors suggest field names.
    pub field_suggestions: bool,
    /// Whether forwarded request ids, trace headers and client addresses are believed.
    pub trusted_proxy: bool,
    /// Bytes the document caches may hold.
    pub document_cache_bytes: usize,
    /// Whether every GraphQL request is logged at info (the process's `CROWDCRUNCH_ACCESS_LOG`).
    pub access_log: bool,
}

impl Default for EdgeSettings {
    /// Production's settings, the same as [`EdgeArgs`]'s defaults.
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_complexity: 2000,
            max_aliases: 30,
            max_body_bytes: 256 * 1024,
            max_document_bytes: 32 * 1024,
            max_tokens: 5000,
            max_page_size: 100,
            max_cost: 50_000,
            cost_budget_per_minute: 1_000_000,
            backend_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_concurrent_requests: 512,
            connection_init_timeout: Duration::from_secs(10),
            max_subscriptions_per_connection: 16,
            max_subscriptions_per_caller: 64,
            allowed_origins: Vec::new(),
            introspection: false,
            graphiql: false,
            field_suggestions: false,
            trusted_proxy: false,
            document_cache_bytes: 8 * 1024 * 1024,
            access_log: false,
        }
    }
}

impl EdgeSettings {
    /// The settings of `crowdcrunch dev`: production's limits, with introspection, GraphiQL and
    /// field suggestions on and `origins` (the edge's own, for GraphiQL) allowed.
    pub fn development(origins: Vec<Origin>) -> Self {
        Self {
            introspection: true,
            graphiql: true,
            field_suggestions: true,
            allowed_origins: origins,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_a_scheme_and_a_host() {
        assert!(Origin::parse("https://shop.example.com").is_ok());
        assert!(Origin::parse("http://localhost:8080").is_ok());
        assert!(Origin::parse("shop.example.com").is_err());
        assert!(Origin::parse("https://shop.example.com/").is_err());
        assert!(Origin::parse("https://").is_err());
        assert!(
            Origin::parse("https://Shop.Example.com")
                .is_ok_and(|origin| origin.matches("https://shop.example.com"))
        );
    }
}
