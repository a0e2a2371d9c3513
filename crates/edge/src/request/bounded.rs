//! A least-recently-used cache bounded by the bytes its entries weigh, not by their number: the
//! caches of documents and persisted queries hold what a client sent, so a few large entries
//! must not be able to hold as much as many small ones.

use std::borrow::Borrow;
use std::hash::Hash;

use lru::LruCache;

/// What a cache holds: its entries and the bytes they weigh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// How many entries it holds.
    pub entries: usize,
    /// What they weigh, in bytes (the weight each was given when it was put).
    pub bytes: usize,
}

/// An LRU cache whose entries weigh at most `budget` bytes together; putting an entry evicts
/// the least recently used ones until it fits, and an entry heavier than the whole budget is
/// not kept at all.
pub(super) struct ByteBounded<K: Hash + Eq, V> {
    entries: LruCache<K, (V, usize)>,
    held: usize,
    budget: usize,
}

impl<K: Hash + Eq, V> ByteBounded<K, V> {
    /// An empty cache of `budget` bytes.
    pub(super) fn new(budget: usize) -> Self {
        Self {
            entries: LruCache::unbounded(),
            held: 0,
            budget,
        }
    }

    /// The entry of `key`, now the most recently used.
    pub(super) fn get<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get_mut(key).map(|(value, _)| value)
    }

    /// Keeps `value` under `key`, weighing `weight` bytes, evicting what it must.
    pub(super) fn put(&mut self, key: K, value: V, weight: usize) {
        if let Some((_, old)) = self.entries.pop(&key) {
            self.held -= old;
        }
        if weight > self.budget {
            return;
        }
        while self.held + weight > self.budget {
            match self.entries.pop_lru() {
                Some((_, (_, evicted))) => self.held -= evicted,
                None => break,
            }
        }
        self.held += weight;
        self.entries.put(key, (value, weight));
    }

    /// Its entries and their weight.
    pub(super) fn usage(&self) -> CacheUsage {
        CacheUsage {
            entries: self.entries.len(),
            bytes: self.held,
        }
    }
}
