//! Settings of the edge process: its HTTP limits and the deadline of its backend calls. They are
//! read here because only the runtime reads the environment; they are plain numbers and
//! durations, and nothing here knows GraphQL.

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
    /// Largest page a connection returns; a larger `first` is coerced to it (AIP-158).
    #[arg(long, env = "CROWDCRUNCH_EDGE_MAX_PAGE_SIZE", default_value_t = 100)]
    pub max_page_size: i32,
    /// Deadline of every backend call.
    #[arg(long, env = "CROWDCRUNCH_EDGE_BACKEND_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub backend_timeout: Duration,
    /// Whether the schema answers introspection (`__schema`, `__type`).
    #[arg(long, env = "CROWDCRUNCH_EDGE_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,
    /// Distinct documents (and persisted queries) remembered, parsed and validated.
    #[arg(long, env = "CROWDCRUNCH_EDGE_DOCUMENT_CACHE", default_value_t = 1024)]
    pub document_cache: usize,
}

impl EdgeArgs {
    /// Validates the flags.
    pub fn settings(&self) -> Result<EdgeSettings, ConfigError> {
        if self.max_page_size < 100 {
            return Err(ConfigError::from_display(
                "CROWDCRUNCH_EDGE_MAX_PAGE_SIZE must be at least 100",
            ));
        }
        if self.max_depth == 0 || self.max_complexity == 0 || self.max_body_bytes == 0 {
            return Err(ConfigError::from_display(
                "CROWDCRUNCH_EDGE_MAX_DEPTH, _MAX_COMPLEXITY and _MAX_BODY_BYTES must be above zero",
            ));
        }
        if self.backend_timeout.is_zero() {
            return Err(ConfigError::from_display(
                "CROWDCRUNCH_EDGE_BACKEND_TIMEOUT must be longer than zero",
            ));
        }
        Ok(EdgeSettings {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            max_aliases: self.max_aliases,
            max_body_bytes: self.max_body_bytes,
            max_page_size: self.max_page_size,
            backend_timeout: self.backend_timeout,
            introspection: self.introspection,
            document_cache: self.document_cache,
        })
    }
}

/// Validated settings of the edge.
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
    /// Largest connection page.
    pub max_page_size: i32,
    /// Deadline of every backend call.
    pub backend_timeout: Duration,
    /// Whether introspection answers.
    pub introspection: bool,
    /// Documents remembered.
    pub document_cache: usize,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_complexity: 2000,
            max_aliases: 30,
            max_body_bytes: 256 * 1024,
            max_page_size: 100,
            backend_timeout: Duration::from_secs(10),
            introspection: true,
            document_cache: 1024,
        }
    }
}
