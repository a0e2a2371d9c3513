//! WatchEvents: one task per watcher that sends the stored backlog, then the events appended in
//! this process as they commit, with a periodic read of the database as the fallback that also
//! brings the appends of other replicas.
//!
//! Sequences commit in order (the head row serialises appenders), so a watcher keeps one number,
//! the last sequence it has passed, and reads "after it" from the database whenever the live feed
//! skips ahead, lags or is quiet. A watcher whose client reads slowly never blocks appenders or
//! other watchers: the live feed is a bounded broadcast that overwrites what a slow watcher has not
//! taken, and that watcher catches up from the database when it can send again.
//!
//! A replay never starves the other queries of the database pool, however many watchers replay
//! at once: a watcher reads the next page (keyset: the events after the last sequence it passed)
//! only once its client has room for all of it, releases the connection before it sends, and at
//! most half the pool's connections serve watchers at any moment, so a slow or silent client holds
//! no connection and a thousand replays leave room for every other query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crowdcrunch_proto::ledger::v1 as pb;
use crowdcrunch_runtime::{Database, DatabaseConnection, Shutdown};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Semaphore, SemaphorePermit, broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::domain::EventFilter;
use crate::error::Error;
use crate::storage;

/// Events appended in this process that the live feed holds for watchers that have not taken them.
const LIVE_BUFFER: usize = 1024;
/// Events queued per watcher ahead of its client; a watcher reads a page of at most this many
/// events once its client has room for them all.
const STREAM_BUFFER: usize = 64;
/// How long a watcher waits for a live event before it reads the database anyway.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the watchers' gauges are set.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// Gauge of the open WatchEvents streams of this process.
const WATCHERS: &str = "ledger_watchers";
/// Gauge of how long, in seconds, the slowest watcher has been behind the newest event appended
/// in this process (0 when every watcher has passed it).
const WATCHER_LAG: &str = "ledger_watcher_lag_seconds";

/// The stream a watcher's client reads.
pub type EventStream = ReceiverStream<Result<pb::Event, Status>>;

/// The live feed of the events appended in this process, after they commit, and the share of
/// the database pool its watchers may use.
#[derive(Debug, Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<pb::Event>>,
    /// One permit per pool connection watchers may use at once: half the pool, at least one.
    reads: Arc<Semaphore>,
    /// How far each watcher is, for the operator's gauges.
    progress: Arc<Mutex<Progress>>,
}

/// The watchers' progress against the newest event appended in this process.
#[derive(Debug, Default)]
struct Progress {
    /// The newest sequence published here.
    newest: i64,
    /// Each open watcher: since when it has been behind `newest` (`None`: it has passed it).
    behind_since: HashMap<u64, Option<std::time::Instant>>,
    next_id: u64,
    /// Whether the task that sets the gauges runs.
    observed: bool,
}

impl Progress {
    /// The slowest watcher's lag.
    fn lag(&self) -> Duration {
        self.behind_since
            .values()
            .flatten()
            .map(std::time::Instant::elapsed)
            .max()
            .unwrap_or_default()
    }
}

/// Sets the watchers' gauges every [`GAUGE_INTERVAL`] while the hub exists.
async fn observe(progress: std::sync::Weak<Mutex<Progress>>) {
    let mut tick = tokio::time::interval(GAUGE_INTERVAL);
    loop {
        tick.tick().await;
        let Some(progress) = progress.upgrade() else {
            return;
        };
        let (watchers, lag) = {
            let progress = lock(&progress);
            (progress.behind_since.len(), progress.lag())
        };
        metrics::gauge!(WATCHERS).set(watchers as f64);
        metrics::gauge!(WATCHER_LAG).set(lag.as_secs_f64());
    }
}

fn lock(progress: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    progress
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A watcher's place in [`Progress`], given up when the watcher ends.
struct Tracked {
    id: u64,
    progress: Arc<Mutex<Progress>>,
}

impl Tracked {
    /// Records that the watcher has passed `last`.
    fn passed(&self, last: i64) {
        let mut progress = lock(&self.progress);
        let behind = last < progress.newest;
        if let Some(since) = progress.behind_since.get_mut(&self.id) {
            match (behind, since.is_some()) {
                (true, false) => *since = Some(std::time::Instant::now()),
                (false, true) => *since = None,
                _ => {}
            }
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        lock(&self.progress).behind_since.remove(&self.id);
    }
}

impl Hub {
    /// A feed with no watcher yet, whose watchers read `database` with at most half its pool.
    pub fn new(database: &Database) -> Self {
        let pool_size = database.max_connections();
        metrics::gauge!(WATCHERS).set(0.0);
        metrics::gauge!(WATCHER_LAG).set(0.0);
        Self {
            sender: broadcast::channel(LIVE_BUFFER).0,
            reads: Arc::new(Semaphore::new((pool_size / 2).max(1))),
            progress: Arc::default(),
        }
    }

    /// Hands committed events to every watcher; never waits.
    pub fn publish(&self, events: Vec<pb::Event>) {
        if let Some(newest) = events.iter().map(|event| event.sequence).max() {
            let mut progress = lock(&self.progress);
            if newest > progress.newest {
                progress.newest = newest;
                let now = std::time::Instant::now();
                for since in progress.behind_since.values_mut() {
                    since.get_or_insert(now);
                }
            }
        }
        for event in events {
            // No watcher is not an error.
            let _ = self.sender.send(Arc::new(event));
        }
    }

    /// Starts a watcher of the events after `after` that pass `filter`, until its client goes
    /// away or `shutdown` fires.
    pub fn watch(
        &self,
        database: Database,
        filter: EventFilter,
        after: i64,
        shutdown: Shutdown,
    ) -> EventStream {
        // Subscribe before the backlog is read: whatever commits meanwhile is in the feed.
        let live = self.sender.subscribe();
        let (out, stream) = mpsc::channel(STREAM_BUFFER);
        let tracked = {
            let mut progress = lock(&self.progress);
            let id = progress.next_id;
            progress.next_id += 1;
            let behind = (after < progress.newest).then(std::time::Instant::now);
            progress.behind_since.insert(id, behind);
            if !progress.observed {
                progress.observed = true;
                tokio::spawn(observe(Arc::downgrade(&self.progress)));
            }
            Tracked {
                id,
                progress: self.progress.clone(),
            }
        };
        let watcher = Watcher {
            tracked,
            database,
            reads: self.reads.clone(),
            filter,
            last: after,
            live,
            out,
            shutdown,
        };
        tokio::spawn(watcher.run());
        ReceiverStream::new(stream)
    }
}

/// Why a watcher stops.
enum Stop {
    /// Its client went away.
    Gone,
    /// The process is shutting down.
    Shutdown,
    /// The database failed.
    Failed(Error),
}

impl From<sqlx::Error> for Stop {
    fn from(error: sqlx::Error) -> Self {
        Self::Failed(error.into())
    }
}

/// What woke a watcher up.
enum Wake {
    Stop(Stop),
    Live(Result<Arc<pb::Event>, RecvError>),
    Poll,
}

struct Watcher {
    /// Its progress, for the gauges.
    tracked: Tracked,
    database: Database,
    /// The watchers' share of the pool.
    reads: Arc<Semaphore>,
    filter: EventFilter,
    /// The last sequence passed: sent, or skipped by the filter.
    last: i64,
    live: broadcast::Receiver<Arc<pb::Event>>,
    out: mpsc::Sender<Result<pb::Event, Status>>,
    shutdown: Shutdown,
}

impl Watcher {
    async fn run(mut self) {
        let status = match self.follow().await {
            Stop::Gone => return,
            Stop::Shutdown => Status::from(Error::ShuttingDown),
            Stop::Failed(error) => Status::from(error),
        };
        // Best effort: a client that reads nothing sees its stream end without the reason.
        let _ = self.out.try_send(Err(status));
    }

    async fn follow(&mut self) -> Stop {
        if let Err(stop) = self.catch_up().await {
            return stop;
        }
        self.tracked.passed(self.last);
        let mut poll = tokio::time::interval_at(Instant::now() + POLL_INTERVAL, POLL_INTERVAL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let wake = tokio::select! {
                () = self.shutdown.cancelled() => Wake::Stop(Stop::Shutdown),
                () = self.out.closed() => Wake::Stop(Stop::Gone),
                received = self.live.recv() => Wake::Live(received),
                _ = poll.tick() => Wake::Poll,
            };
            let step = match wake {
                Wake::Stop(stop) => return stop,
                Wake::Live(Ok(event)) if event.sequence <= self.last => Ok(()),
                Wake::Live(Ok(event)) if event.sequence == self.last + 1 => {
                    poll.reset();
                    self.last = event.sequence;
                    if self.filter.admit(&event) {
                        self.send(pb::Event::clone(&event)).await
                    } else {
                        Ok(())
                    }
                }
                // The feed skipped ahead (another append published first) or overwrote events
                // this watcher had not taken yet: the database has them all, in order.
                Wake::Live(Ok(_) | Err(RecvError::Lagged(_))) | Wake::Poll => self.catch_up().await,
                Wake::Live(Err(RecvError::Closed)) => Err(Stop::Shutdown),
            };
            if let Err(stop) = step {
                return stop;
            }
            self.tracked.passed(self.last);
        }
    }

    /// Sends every stored event after `last` up to the current head, a page at a time: each
    /// page read once the client has room for all of it, with a connection held only while it is
    /// read.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        let head = {
            let (_share, mut connection) = self.connection().await?;
            storage::head(&mut connection).await?
        };
        let page_size = i64::try_from(STREAM_BUFFER).unwrap_or(i64::MAX);
        loop {
            let room = tokio::select! {
                room = self.out.reserve_many(STREAM_BUFFER) => room.map_err(|_| Stop::Gone)?,
                () = self.shutdown.cancelled() => return Err(Stop::Shutdown),
            };
            let page = {
                let (_share, mut connection) = self.connection().await?;
                storage::range(&mut connection, self.last, head, &self.filter, page_size).await?
            };
            let complete = page.len() < STREAM_BUFFER;
            for (event, slot) in page.into_iter().zip(room) {
                self.last = event.sequence;
                slot.send(Ok(event));
            }
            if complete {
                self.last = self.last.max(head);
                return Ok(());
            }
        }
    }

    /// A connection from the watchers' share of the pool; both go back when dropped.
    async fn connection(&self) -> Result<(SemaphorePermit<'_>, DatabaseConnection), Stop> {
        let share = tokio::select! {
            share = self.reads.acquire() => share.map_err(|_| Stop::Shutdown)?,
            () = self.shutdown.cancelled() => return Err(Stop::Shutdown),
        };
        let connection = self.database.acquire().await?;
        Ok((share, connection))
    }

    /// Sends one event, waiting while the client is behind, unless the process shuts down.
    async fn send(&self, event: pb::Event) -> Result<(), Stop> {
        tokio::select! {
            sent = self.out.send(Ok(event)) => sent.map_err(|_| Stop::Gone),
            () = self.shutdown.cancelled() => Err(Stop::Shutdown),
        }
    }
}
