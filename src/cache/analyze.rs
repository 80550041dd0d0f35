//! Cache analytics (`runner cache analyze`, the UI's analytics page): hit rates per key prefix
//! and per restore-key level, and typed findings — keys that never hit, keys that change on
//! every run, restore keys that never match, entries evicted by size before any restore,
//! byte-identical content under distinct keys, and the time restores save — each with a
//! concrete recommendation. Computed from the index and its events, nothing else.
//!
//! CONTRACT (the CLI and the UI call these names; extend, don't rename):
//! - [`analyze`]`(&Store, &AnalyzeOptions) -> Result<Report, AnalyzeError>`.
//! - [`Report`] serializes (serde) to the `--json` shape, tagged [`REPORT_SCHEMA`].
//! - [`key_prefix`]: the key up to its last `-` (the prefix metrics group by).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::clock::EpochMillis;
use crate::store::Store;
use crate::store::index::{
    DEFAULT_MAX_SIZE_BYTES, DetailedEvent, Entry, EventKind, IndexError, ListFilter, key_lower,
};

/// The `schema` field of the JSON report; bumped when a field changes meaning or goes away.
pub const REPORT_SCHEMA: &str = "runner.cache.analyze/1";

/// Errors from [`analyze`].
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// Reading the index failed.
    #[error("cannot read the cache index for analysis")]
    Index {
        /// The index error.
        #[source]
        source: IndexError,
    },
}

impl From<IndexError> for AnalyzeError {
    fn from(source: IndexError) -> Self {
        AnalyzeError::Index { source }
    }
}

/// What to analyze.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzeOptions {
    /// Only this repository (`owner/name`); every repository when `None`.
    pub repository: Option<String>,
    /// Events at or after this time (epoch milliseconds) are analyzed.
    pub since: EpochMillis,
    /// The size budget per repository in effect (`RUNNER_CACHE_MAX_SIZE`).
    pub budget_bytes: u64,
    /// How many distinct keys of one shape, none ever restored exactly, make a key that
    /// changes on every run.
    pub volatile_min_keys: usize,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            repository: None,
            since: 0,
            budget_bytes: DEFAULT_MAX_SIZE_BYTES,
            volatile_min_keys: 3,
        }
    }
}

/// The analysis: rates, then findings (most important first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Always [`REPORT_SCHEMA`].
    pub schema: &'static str,
    /// The repository analyzed, or `None` for all.
    pub repository: Option<String>,
    /// Start of the analyzed window (epoch milliseconds).
    pub since: EpochMillis,
    /// When the report was made (the index clock).
    pub generated_at: EpochMillis,
    /// The size budget per repository the report judged evictions against.
    pub budget_bytes: u64,
    /// Lookups and bytes over the window (the numbers `runner cache stats` shows).
    pub totals: Totals,
    /// Hit rate per key prefix (of the primary key looked up), most lookups first.
    pub prefixes: Vec<PrefixRate>,
    /// Which level served the hits: the primary key, or restore key 1, 2, ...
    pub levels: Vec<LevelRate>,
    /// What to change, most important first.
    pub findings: Vec<Finding>,
}

/// Lookup counts over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Exact hits + partial hits + misses.
    pub lookups: u64,
    /// Hits on the primary key itself.
    pub hits_exact: u64,
    /// Hits on a restore key or a newer key starting with the primary key.
    pub hits_partial: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Restores or saves that failed.
    pub errors: u64,
    /// (exact + partial) / lookups; 0 without lookups.
    pub hit_rate: f64,
    /// Bytes restored by hits.
    pub bytes_restored: u64,
    /// Bytes saved.
    pub bytes_saved: u64,
}

/// Lookups of one key prefix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixRate {
    /// The primary key up to its last `-` ([`key_prefix`]).
    pub prefix: String,
    /// Lookups whose primary key has this prefix.
    pub lookups: u64,
    /// Exact hits among them.
    pub hits_exact: u64,
    /// Partial hits among them.
    pub hits_partial: u64,
    /// Misses among them.
    pub misses: u64,
    /// (exact + partial) / lookups.
    pub hit_rate: f64,
}

/// Hits served by one level of the lookup order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelRate {
    /// 0 for the primary key, n for the n-th restore key; `None` for hits recorded before
    /// levels were (schema version 2 events).
    pub level: Option<u32>,
    /// `key`, `restore-keys[1]`, ... or `unknown`.
    pub label: String,
    /// Hits whose matched key equals the level's key.
    pub exact_matches: u64,
    /// Hits on the newest key starting with the level's key.
    pub prefix_matches: u64,
    /// Share of all hits in the window served by this level.
    pub share: f64,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Space or time is being wasted: act on it.
    Warning,
    /// Worth knowing; nothing is wrong.
    Info,
}

/// One finding: what was seen, and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// The repository it is about.
    pub repository: String,
    /// One line saying what was seen, with the numbers.
    pub summary: String,
    /// What to change.
    pub recommendation: String,
    /// The typed facts (serialized flat, with a `kind` field).
    #[serde(flatten)]
    pub detail: FindingDetail,
}

/// The facts of a finding, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FindingDetail {
    /// Keys of one shape saved anew by every run and never restored exactly: the key holds a
    /// run id, run number, timestamp or the hash of files each run changes.
    VolatileKey {
        /// The key with its varying parts replaced (`deps-linux-{n}`).
        shape: String,
        /// What varies.
        part: VolatilePart,
        /// Distinct keys of this shape saved in the window.
        keys_saved: u64,
        /// Bytes those saves wrote.
        bytes_saved: u64,
        /// Restores of these keys through restore keys (fallbacks).
        partial_hits: u64,
        /// A few of the keys, oldest first.
        examples: Vec<String>,
    },
    /// Keys saved and then evicted as unused without a single restore.
    NeverHit {
        /// Their key prefix.
        prefix: String,
        /// The keys, oldest eviction first.
        keys: Vec<String>,
        /// Bytes they held.
        bytes: u64,
    },
    /// A restore key the lookup reached (the keys before it missed) and that never matched.
    RestoreKeyNeverMatches {
        /// The restore key as written.
        restore_key: String,
        /// Lookups that tried it.
        tried: u64,
        /// The saved key sharing the longest prefix with it, if any.
        closest_saved_key: Option<String>,
    },
    /// Entries evicted by size pressure before they were ever restored.
    EvictedBeforeRestore {
        /// Their keys, oldest eviction first.
        keys: Vec<String>,
        /// How many evictions.
        evictions: u64,
        /// Bytes evicted.
        bytes: u64,
        /// The budget in effect.
        budget_bytes: u64,
        /// The peak size the repository's entries reached with no size eviction: a budget at
        /// least this large would have kept them.
        budget_needed_bytes: u64,
    },
    /// Distinct keys whose archives are byte-identical (stored once: content-addressed).
    DuplicateContent {
        /// The shared blob's sha256.
        digest: String,
        /// The keys holding it.
        keys: Vec<String>,
        /// Size of the archive.
        size_bytes: u64,
        /// Bytes content addressing saved: (entries - 1) * size.
        dedup_saved_bytes: u64,
    },
    /// Restore time versus the time the job's steps took on a miss of the same key.
    TimeSaved {
        /// The key prefix.
        prefix: String,
        /// Exact hits counted (their key's miss run was measured).
        hits: u64,
        /// Mean restore time of those hits.
        mean_restore_ms: u64,
        /// Mean time the job's steps took after a miss of the same key.
        mean_miss_steps_ms: u64,
        /// Sum over the hits of (miss steps time - restore time); negative when restoring
        /// is slower than doing the work.
        saved_ms: i64,
    },
}

/// What varies between the keys of a [`FindingDetail::VolatileKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VolatilePart {
    /// A small number growing per run (`github.run_number`, `github.run_id`).
    RunNumber,
    /// A number of 10 or more digits (a Unix time, a date stamp).
    Timestamp,
    /// A long hex string (`github.sha`, `hashFiles` of files each run changes).
    Hash,
    /// Something else.
    Other,
}

impl VolatilePart {
    /// How the recommendation names it.
    fn describe(self) -> &'static str {
        match self {
            VolatilePart::RunNumber => "a run number or run id",
            VolatilePart::Timestamp => "a timestamp",
            VolatilePart::Hash => {
                "a hash that changes every run (a commit sha, or hashFiles of files the job writes)"
            }
            VolatilePart::Other => "a part that changes every run",
        }
    }
}

/// The key up to its last `-` (the whole key when it has none): the prefix hit rates and
/// metrics are grouped by.
pub fn key_prefix(key: &str) -> &str {
    key.rfind('-').map_or(key, |i| &key[..i])
}

/// Which lookup level matched `matched` for the keys `keys` (primary first): the first key the
/// matched key starts with, case-insensitively. The index tries each key exactly, then as a
/// prefix, before the next, so the first key that `matched` starts with is the one that served.
pub fn served_level(keys: &[String], matched: &str) -> Option<u32> {
    let matched = key_lower(matched);
    keys.iter()
        .position(|k| !k.is_empty() && matched.starts_with(&key_lower(k)))
        .and_then(|i| u32::try_from(i).ok())
}

/// `1.5 MB`-style sizes (powers of 1024).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A `RUNNER_CACHE_MAX_SIZE` value of at least `bytes`, in the largest whole unit (`121K`).
pub fn budget_setting(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        let size = 1u64 << shift;
        if bytes >= size {
            return format!("{}{unit}", bytes.div_ceil(size));
        }
    }
    bytes.to_string()
}

/// Analyzes the store's index and events over the window `options` gives.
pub fn analyze(store: &Store, options: &AnalyzeOptions) -> Result<Report, AnalyzeError> {
    let index = store.index();
    let events = index.detailed_events(options.since, options.repository.as_deref())?;
    let entries = index.list(&ListFilter {
        repository: options.repository.clone(),
        ..ListFilter::default()
    })?;
    let facts = Facts::new(&events, &entries);
    let mut findings = Vec::new();
    let volatile = facts.volatile_keys(options, &mut findings);
    facts.never_hit(&volatile, &mut findings);
    facts.restore_keys_never_matching(&mut findings);
    facts.evicted_before_restore(options, &mut findings);
    facts.duplicate_content(&mut findings);
    facts.time_saved(&mut findings);
    // Stable: within a severity, findings keep the order above.
    findings.sort_by_key(|f| f.severity);
    Ok(Report {
        schema: REPORT_SCHEMA,
        repository: options.repository.clone(),
        since: options.since,
        generated_at: index.clock().now_millis(),
        budget_bytes: options.budget_bytes,
        totals: facts.totals(),
        prefixes: facts.prefix_rates(),
        levels: facts.level_rates(),
        findings,
    })
}

/// (repository, lowercased key): how keys are compared, as lookups compare them.
type KeyId = (String, String);

/// The events and entries of the window, indexed the ways the findings read them.
struct Facts<'a> {
    events: &'a [DetailedEvent],
    entries: &'a [Entry],
    /// Times of hits (exact or partial) per matched key.
    hits: BTreeMap<KeyId, Vec<EpochMillis>>,
    /// Matched keys that got an exact hit.
    exact_hits: BTreeSet<KeyId>,
    /// Times of saves per key, oldest first.
    saves: BTreeMap<KeyId, Vec<EpochMillis>>,
}

fn lower_id(repository: &str, key: &str) -> KeyId {
    (repository.to_string(), key_lower(key))
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn is_lookup(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::HitExact | EventKind::HitPartial | EventKind::Miss
    )
}

impl<'a> Facts<'a> {
    fn new(events: &'a [DetailedEvent], entries: &'a [Entry]) -> Self {
        let mut hits: BTreeMap<KeyId, Vec<EpochMillis>> = BTreeMap::new();
        let mut exact_hits = BTreeSet::new();
        let mut saves: BTreeMap<KeyId, Vec<EpochMillis>> = BTreeMap::new();
        for e in events {
            let ev = &e.event.event;
            if ev.kind == EventKind::Save {
                saves
                    .entry(lower_id(&ev.repository, &ev.key))
                    .or_default()
                    .push(e.event.at);
            }
            let Some(matched) = ev.matched_key.as_deref() else {
                continue;
            };
            if !matches!(ev.kind, EventKind::HitExact | EventKind::HitPartial) {
                continue;
            }
            let id = lower_id(&ev.repository, matched);
            hits.entry(id.clone()).or_default().push(e.event.at);
            if ev.kind == EventKind::HitExact {
                exact_hits.insert(id);
            }
        }
        Self {
            events,
            entries,
            hits,
            exact_hits,
            saves,
        }
    }

    fn of_kind(&self, kind: EventKind) -> impl Iterator<Item = &'a DetailedEvent> + 'a {
        self.events
            .iter()
            .filter(move |e| e.event.event.kind == kind)
    }

    fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for e in self.events {
            let ev = &e.event.event;
            let bytes = ev.bytes.unwrap_or(0);
            match ev.kind {
                EventKind::HitExact => {
                    t.hits_exact += 1;
                    t.bytes_restored += bytes;
                }
                EventKind::HitPartial => {
                    t.hits_partial += 1;
                    t.bytes_restored += bytes;
                }
                EventKind::Miss => t.misses += 1,
                EventKind::Save => t.bytes_saved += bytes,
                EventKind::Error => t.errors += 1,
                EventKind::Skip | EventKind::Evict => {}
            }
        }
        t.lookups = t.hits_exact + t.hits_partial + t.misses;
        t.hit_rate = ratio(t.hits_exact + t.hits_partial, t.lookups);
        t
    }

    fn prefix_rates(&self) -> Vec<PrefixRate> {
        let mut by_prefix: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
        for e in self.events {
            let ev = &e.event.event;
            let slot = match ev.kind {
                EventKind::HitExact => 0,
                EventKind::HitPartial => 1,
                EventKind::Miss => 2,
                _ => continue,
            };
            by_prefix.entry(key_prefix(&ev.key)).or_default()[slot] += 1;
        }
        let mut rates: Vec<PrefixRate> = by_prefix
            .into_iter()
            .map(|(prefix, [exact, partial, misses])| {
                let lookups = exact + partial + misses;
                PrefixRate {
                    prefix: prefix.to_string(),
                    lookups,
                    hits_exact: exact,
                    hits_partial: partial,
                    misses,
                    hit_rate: ratio(exact + partial, lookups),
                }
            })
            .collect();
        rates.sort_by(|a, b| b.lookups.cmp(&a.lookups).then(a.prefix.cmp(&b.prefix)));
        rates
    }

    fn level_rates(&self) -> Vec<LevelRate> {
        // None sorts first in a BTreeMap; unknown levels are listed last below.
        let mut by_level: BTreeMap<Option<u32>, (u64, u64)> = BTreeMap::new();
        let mut hits = 0;
        for e in self.events {
            let ev = &e.event.event;
            if !matches!(ev.kind, EventKind::HitExact | EventKind::HitPartial) {
                continue;
            }
            hits += 1;
            let level = e.detail.level;
            let exact = level.and_then(|l| requested_key(e, l)).is_some_and(|k| {
                ev.matched_key
                    .as_deref()
                    .is_some_and(|m| key_lower(m) == key_lower(k))
            });
            let slot = by_level.entry(level).or_default();
            if exact {
                slot.0 += 1;
            } else {
                slot.1 += 1;
            }
        }
        let mut rates: Vec<LevelRate> = by_level
            .into_iter()
            .map(|(level, (exact, prefix))| LevelRate {
                level,
                label: match level {
                    None => "unknown".to_string(),
                    Some(0) => "key".to_string(),
                    Some(n) => format!("restore-keys[{n}]"),
                },
                exact_matches: exact,
                prefix_matches: prefix,
                share: ratio(exact + prefix, hits),
            })
            .collect();
        let unknown_first = rates.first().is_some_and(|r| r.level.is_none());
        rates.rotate_left(usize::from(unknown_first));
        rates
    }

    /// Whether the entry `key` (saved at or before `until`, last saved at `saved`) was
    /// restored between its save and `until`.
    fn restored_between(&self, id: &KeyId, saved: EpochMillis, until: EpochMillis) -> bool {
        self.hits
            .get(id)
            .is_some_and(|times| times.iter().any(|t| *t >= saved && *t <= until))
    }

    /// When `id` was last saved at or before `until` (the window start when not in it).
    fn last_save(&self, id: &KeyId, until: EpochMillis) -> EpochMillis {
        self.saves
            .get(id)
            .and_then(|times| times.iter().rev().find(|t| **t <= until))
            .copied()
            .unwrap_or(EpochMillis::MIN)
    }

    /// Evictions for `reason` of entries nothing restored since their save, oldest first.
    fn unrestored_evictions(&self, reason: &str) -> Vec<&'a DetailedEvent> {
        self.of_kind(EventKind::Evict)
            .filter(|e| e.event.reason.as_deref() == Some(reason))
            .filter(|e| {
                let id = lower_id(&e.event.event.repository, &e.event.event.key);
                let saved = self.last_save(&id, e.event.at);
                !self.restored_between(&id, saved, e.event.at)
            })
            .collect()
    }

    fn volatile_keys(&self, options: &AnalyzeOptions, out: &mut Vec<Finding>) -> BTreeSet<KeyId> {
        struct Group {
            keys: Vec<(String, Vec<Placeholder>)>,
            seen: BTreeSet<String>,
            bytes: u64,
        }
        let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
        for e in self.of_kind(EventKind::Save) {
            let ev = &e.event.event;
            let (shape, placeholders) = key_shape(&ev.key);
            let group = groups
                .entry((ev.repository.clone(), shape))
                .or_insert_with(|| Group {
                    keys: Vec::new(),
                    seen: BTreeSet::new(),
                    bytes: 0,
                });
            group.bytes += ev.bytes.unwrap_or(0);
            if group.seen.insert(key_lower(&ev.key)) {
                group.keys.push((ev.key.clone(), placeholders));
            }
        }
        let mut covered = BTreeSet::new();
        for ((repository, shape), group) in groups {
            if group.keys.len() < options.volatile_min_keys.max(2) {
                continue;
            }
            let ids: Vec<KeyId> = group
                .keys
                .iter()
                .map(|(k, _)| lower_id(&repository, k))
                .collect();
            if ids.iter().any(|id| self.exact_hits.contains(id)) {
                continue;
            }
            let partial_hits: u64 = ids
                .iter()
                .map(|id| self.hits.get(id).map_or(0, |t| t.len() as u64))
                .sum();
            let part = varying_part(&group.keys);
            let keys_saved = group.keys.len() as u64;
            let fixed = shape.split('{').next().unwrap_or_default().to_string();
            let (severity, rolling) = if partial_hits > 0 {
                (
                    Severity::Info,
                    format!(
                        " Restore keys already serve {partial_hits} of these restores, but every run still archives and uploads a new entry: if a rolling cache is what you want, that is its cost; otherwise take the part out."
                    ),
                )
            } else {
                (
                    Severity::Warning,
                    format!(
                        " If each run should start from the previous run's cache, add `restore-keys: {fixed}`."
                    ),
                )
            };
            out.push(Finding {
                severity,
                repository: repository.clone(),
                summary: format!(
                    "key `{shape}` changes on every run: {keys_saved} keys saved ({}), none restored exactly",
                    human_size(group.bytes)
                ),
                recommendation: format!(
                    "The key contains {}. Take it out of `key:` and key on what decides the content (e.g. `{fixed}${{{{ hashFiles('**/lockfile') }}}}`).{rolling}",
                    part.describe()
                ),
                detail: FindingDetail::VolatileKey {
                    shape,
                    part,
                    keys_saved,
                    bytes_saved: group.bytes,
                    partial_hits,
                    examples: group.keys.iter().take(3).map(|(k, _)| k.clone()).collect(),
                },
            });
            covered.extend(ids);
        }
        covered
    }

    fn never_hit(&self, volatile: &BTreeSet<KeyId>, out: &mut Vec<Finding>) {
        let mut by_prefix: BTreeMap<(String, String), (Vec<String>, u64)> = BTreeMap::new();
        for e in self.unrestored_evictions("unused") {
            let ev = &e.event.event;
            if volatile.contains(&lower_id(&ev.repository, &ev.key)) {
                continue;
            }
            let slot = by_prefix
                .entry((ev.repository.clone(), key_prefix(&ev.key).to_string()))
                .or_default();
            slot.0.push(ev.key.clone());
            slot.1 += ev.bytes.unwrap_or(0);
        }
        for ((repository, prefix), (keys, bytes)) in by_prefix {
            out.push(Finding {
                severity: Severity::Warning,
                repository,
                summary: format!(
                    "{} keys with prefix `{prefix}` were saved and expired unused ({})",
                    keys.len(),
                    human_size(bytes)
                ),
                recommendation: "No lookup restored them: check that the step restoring them uses the same `key` and the same `path:` lines (the cache version hashes `path:` and the compression), or stop saving them.".to_string(),
                detail: FindingDetail::NeverHit {
                    prefix,
                    keys,
                    bytes,
                },
            });
        }
    }

    fn restore_keys_never_matching(&self, out: &mut Vec<Finding>) {
        // (repository, lowercased restore key) -> (as written, tried, matched)
        let mut tally: BTreeMap<KeyId, (String, u64, u64)> = BTreeMap::new();
        for e in self.events {
            let ev = &e.event.event;
            if !is_lookup(ev.kind) || e.detail.restore_keys.is_empty() {
                continue;
            }
            let served = match ev.kind {
                EventKind::Miss => None,
                // A hit recorded without its level cannot say which keys it reached.
                _ => match e.detail.level {
                    Some(level) => Some(level),
                    None => continue,
                },
            };
            for (i, restore_key) in e.detail.restore_keys.iter().enumerate() {
                let level = u32::try_from(i + 1).unwrap_or(u32::MAX);
                if served.is_some_and(|s| s < level) {
                    break;
                }
                let slot = tally
                    .entry(lower_id(&ev.repository, restore_key))
                    .or_insert_with(|| (restore_key.clone(), 0, 0));
                slot.1 += 1;
                if served == Some(level) {
                    slot.2 += 1;
                }
            }
        }
        for ((repository, lower), (restore_key, tried, matched)) in tally {
            if matched > 0 || tried == 0 {
                continue;
            }
            let saved = self.saved_keys(&repository);
            if saved.iter().any(|k| key_lower(k).starts_with(&lower)) {
                // A later save matches it: it will match from now on.
                continue;
            }
            let closest = saved
                .iter()
                .map(|k| (common_prefix_len(&key_lower(k), &lower), k))
                .filter(|(n, _)| *n > 0)
                .max_by_key(|(n, _)| *n)
                .map(|(_, k)| k.clone());
            let hint = match &closest {
                Some(k) => {
                    let common = &key_lower(k)[..common_prefix_len(&key_lower(k), &lower)];
                    let cut = common
                        .rfind(['-', '_', '/', '.'])
                        .map_or(common.len(), |i| i + 1);
                    format!(
                        " The closest saved key is `{k}`: a restore key such as `{}` would match it.",
                        &k[..cut.min(k.len())]
                    )
                }
                None => String::new(),
            };
            out.push(Finding {
                severity: Severity::Warning,
                repository,
                summary: format!(
                    "restore key `{restore_key}` was tried {} and never matched",
                    times(tried)
                ),
                recommendation: format!(
                    "No saved key starts with `{restore_key}`: fix it to a prefix of the keys the job saves, or remove it.{hint}"
                ),
                detail: FindingDetail::RestoreKeyNeverMatches {
                    restore_key,
                    tried,
                    closest_saved_key: closest,
                },
            });
        }
    }

    /// Keys saved in the window or present now, of one repository, newest save last.
    fn saved_keys(&self, repository: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.repository == repository)
            .map(|e| e.key.clone())
            .collect();
        keys.extend(
            self.of_kind(EventKind::Save)
                .filter(|e| e.event.event.repository == repository)
                .map(|e| e.event.event.key.clone()),
        );
        keys
    }

    fn evicted_before_restore(&self, options: &AnalyzeOptions, out: &mut Vec<Finding>) {
        let mut by_repository: BTreeMap<String, (Vec<String>, u64)> = BTreeMap::new();
        for e in self.unrestored_evictions("size") {
            let ev = &e.event.event;
            let slot = by_repository.entry(ev.repository.clone()).or_default();
            slot.0.push(ev.key.clone());
            slot.1 += ev.bytes.unwrap_or(0);
        }
        for (repository, (keys, bytes)) in by_repository {
            let needed = self.peak_without_size_evictions(&repository, options.since);
            let evictions = keys.len() as u64;
            out.push(Finding {
                severity: Severity::Warning,
                summary: format!(
                    "{evictions} entries ({}) were evicted by the {} size budget before any restore",
                    human_size(bytes),
                    human_size(options.budget_bytes)
                ),
                recommendation: format!(
                    "The budget is too small for what the jobs save: without size evictions the repository's entries peaked at {}. Set RUNNER_CACHE_MAX_SIZE={} (or more), or save less (narrower `path:` lines, fewer keys).",
                    human_size(needed),
                    budget_setting(needed)
                ),
                repository,
                detail: FindingDetail::EvictedBeforeRestore {
                    keys,
                    evictions,
                    bytes,
                    budget_bytes: options.budget_bytes,
                    budget_needed_bytes: needed,
                },
            });
        }
    }

    /// The largest total size the repository's entries reached in the window had no entry been
    /// evicted for size: entries older than the window are counted from the start, saves add
    /// (a re-save of a key replaces it), other evictions remove.
    fn peak_without_size_evictions(&self, repository: &str, since: EpochMillis) -> u64 {
        let mut live: BTreeMap<(String, String), u64> = BTreeMap::new();
        for entry in self.entries {
            if entry.repository == repository && entry.created_at < since {
                live.insert(
                    (entry.scope.clone(), key_lower(&entry.key)),
                    entry.size_bytes,
                );
            }
        }
        let ours = || {
            self.events
                .iter()
                .filter(move |e| e.event.event.repository == repository)
        };
        // An entry evicted in the window but saved before it was live at its start.
        let mut saved_in_window: BTreeSet<(String, String)> = BTreeSet::new();
        for e in ours() {
            let ev = &e.event.event;
            let id = (ev.scope.clone(), key_lower(&ev.key));
            match ev.kind {
                EventKind::Save => {
                    saved_in_window.insert(id);
                }
                EventKind::Evict if !saved_in_window.contains(&id) => {
                    live.insert(id, ev.bytes.unwrap_or(0));
                }
                _ => {}
            }
        }
        let mut total: u64 = live.values().sum();
        let mut peak = total;
        for e in ours() {
            let ev = &e.event.event;
            let id = (ev.scope.clone(), key_lower(&ev.key));
            match ev.kind {
                EventKind::Save => {
                    let replaced = live.insert(id, ev.bytes.unwrap_or(0)).unwrap_or(0);
                    total = total.saturating_sub(replaced) + ev.bytes.unwrap_or(0);
                    peak = peak.max(total);
                }
                EventKind::Evict if e.event.reason.as_deref() != Some("size") => {
                    total = total.saturating_sub(live.remove(&id).unwrap_or(0));
                }
                _ => {}
            }
        }
        peak
    }

    fn duplicate_content(&self, out: &mut Vec<Finding>) {
        let mut by_blob: BTreeMap<(&str, &str), Vec<&Entry>> = BTreeMap::new();
        for entry in self.entries {
            if let Some(digest) = entry.blob_digest.as_deref() {
                by_blob
                    .entry((entry.repository.as_str(), digest))
                    .or_default()
                    .push(entry);
            }
        }
        for ((repository, digest), entries) in by_blob {
            let mut keys: Vec<String> = Vec::new();
            for entry in &entries {
                if !keys.iter().any(|k| key_lower(k) == key_lower(&entry.key)) {
                    keys.push(entry.key.clone());
                }
            }
            if keys.len() < 2 {
                continue;
            }
            keys.sort();
            let size = entries[0].size_bytes;
            let saved = size * (entries.len() as u64 - 1);
            out.push(Finding {
                severity: Severity::Info,
                repository: repository.to_string(),
                summary: format!(
                    "{} distinct keys hold byte-identical archives of {} (dedup saved {})",
                    keys.len(),
                    human_size(size),
                    human_size(saved)
                ),
                recommendation: format!(
                    "What differs between {} does not change the content: use one key for them (drop the differing part), so each run archives and uploads it once.",
                    keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                ),
                detail: FindingDetail::DuplicateContent {
                    digest: digest.to_string(),
                    keys,
                    size_bytes: size,
                    dedup_saved_bytes: saved,
                },
            });
        }
    }

    fn time_saved(&self, out: &mut Vec<Finding>) {
        let mut steps: BTreeMap<KeyId, Vec<u64>> = BTreeMap::new();
        for e in self.of_kind(EventKind::Save) {
            if let Some(ms) = e.detail.steps_ms {
                let ev = &e.event.event;
                steps
                    .entry(lower_id(&ev.repository, &ev.key))
                    .or_default()
                    .push(ms);
            }
        }
        // (repository, prefix) -> (hits, restore ms, miss steps ms)
        let mut by_prefix: BTreeMap<(String, String), (u64, u64, u64)> = BTreeMap::new();
        for e in self.of_kind(EventKind::HitExact) {
            let ev = &e.event.event;
            let Some(matched) = ev.matched_key.as_deref() else {
                continue;
            };
            let Some(measured) = steps.get(&lower_id(&ev.repository, matched)) else {
                continue;
            };
            let miss_ms = measured.iter().sum::<u64>() / measured.len().max(1) as u64;
            let slot = by_prefix
                .entry((ev.repository.clone(), key_prefix(matched).to_string()))
                .or_default();
            slot.0 += 1;
            slot.1 += ev.duration_ms.unwrap_or(0);
            slot.2 += miss_ms;
        }
        for ((repository, prefix), (hits, restore_ms, miss_ms)) in by_prefix {
            let saved_ms = i64::try_from(miss_ms).unwrap_or(i64::MAX)
                - i64::try_from(restore_ms).unwrap_or(i64::MAX);
            let mean_restore_ms = restore_ms / hits;
            let mean_miss_steps_ms = miss_ms / hits;
            let (severity, recommendation) = if saved_ms > 0 {
                (
                    Severity::Info,
                    "Keep this cache: restoring it is faster than the work it replaces."
                        .to_string(),
                )
            } else {
                (
                    Severity::Warning,
                    "Restoring takes longer than the job's steps took without the cache: drop this cache, or cache less (narrower `path:` lines).".to_string(),
                )
            };
            out.push(Finding {
                severity,
                repository,
                summary: format!(
                    "`{prefix}`: {hits} exact hits restored in {mean_restore_ms} ms on average; the job's steps took {mean_miss_steps_ms} ms after a miss: {:.1} s saved",
                    saved_ms as f64 / 1000.0
                ),
                recommendation,
                detail: FindingDetail::TimeSaved {
                    prefix,
                    hits,
                    mean_restore_ms,
                    mean_miss_steps_ms,
                    saved_ms,
                },
            });
        }
    }
}

/// The key a lookup asked for at `level` (0 the primary key).
fn requested_key(e: &DetailedEvent, level: u32) -> Option<&str> {
    match level {
        0 => Some(e.event.event.key.as_str()),
        n => e
            .detail
            .restore_keys
            .get(usize::try_from(n - 1).ok()?)
            .map(String::as_str),
    }
}

/// `1 time`, `3 times`.
fn times(n: u64) -> String {
    if n == 1 {
        "1 time".to_string()
    } else {
        format!("{n} times")
    }
}

fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .take_while(|((_, x), y)| x == y)
        .last()
        .map_or(0, |((i, x), _)| i + x.len_utf8())
}

/// A varying part of a key, as [`key_shape`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placeholder {
    part: VolatilePart,
    value: String,
}

/// The key with its numbers (`{n}`, `{timestamp}` from 10 digits on) and long hex strings
/// (`{hash}`) replaced, and what was replaced, in order.
fn key_shape(key: &str) -> (String, Vec<Placeholder>) {
    let mut shape = String::new();
    let mut found = Vec::new();
    for segment in key.split_inclusive(['-', '_', '.', '/', ':', '+', ' ']) {
        let (body, sep) = match segment.char_indices().last() {
            Some((i, c)) if "-_./:+ ".contains(c) => (&segment[..i], &segment[i..]),
            _ => (segment, ""),
        };
        let hexlike = body.len() >= 7
            && body.chars().all(|c| c.is_ascii_hexdigit())
            && body.chars().any(|c| c.is_ascii_digit())
            && !body.chars().all(|c| c.is_ascii_digit());
        if hexlike {
            shape.push_str("{hash}");
            found.push(Placeholder {
                part: VolatilePart::Hash,
                value: body.to_ascii_lowercase(),
            });
        } else {
            let mut rest = body;
            while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
                shape.push_str(&rest[..start]);
                let digits = &rest[start..];
                let end = digits
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(digits.len());
                let (number, tail) = digits.split_at(end);
                let part = if number.len() >= 10 {
                    VolatilePart::Timestamp
                } else {
                    VolatilePart::RunNumber
                };
                shape.push_str(if part == VolatilePart::Timestamp {
                    "{timestamp}"
                } else {
                    "{n}"
                });
                found.push(Placeholder {
                    part,
                    value: number.to_string(),
                });
                rest = tail;
            }
            shape.push_str(rest);
        }
        shape.push_str(sep);
    }
    (shape, found)
}

/// What varies across keys of one shape: a timestamp before a hash before a run number.
fn varying_part(keys: &[(String, Vec<Placeholder>)]) -> VolatilePart {
    let Some((_, first)) = keys.first() else {
        return VolatilePart::Other;
    };
    let varying: Vec<VolatilePart> = first
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            keys.iter()
                .any(|(_, other)| other.get(*i).is_some_and(|o| o.value != p.value))
        })
        .map(|(_, p)| p.part)
        .collect();
    [
        VolatilePart::Timestamp,
        VolatilePart::Hash,
        VolatilePart::RunNumber,
    ]
    .into_iter()
    .find(|p| varying.contains(p))
    .unwrap_or(VolatilePart::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_level_and_shape_rows() {
        assert_eq!(key_prefix("npm-linux-abc"), "npm-linux");
        assert_eq!(key_prefix("plain"), "plain");
        let keys: Vec<String> = ["deps-linux-7", "deps-", "other"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(served_level(&keys, "Deps-Linux-7"), Some(0));
        assert_eq!(served_level(&keys, "deps-linux-6"), Some(1));
        assert_eq!(served_level(&keys, "other-1"), Some(2));
        assert_eq!(served_level(&keys, "none"), None);
        let rows = [
            ("deps-linux-42", "deps-linux-{n}"),
            ("build-1764760000123-x", "build-{timestamp}-x"),
            ("src-3f2a9c1d0e", "src-{hash}"),
            ("py3.11-run7", "py{n}.{n}-run{n}"),
            ("deadbeef-cafe", "deadbeef-cafe"),
        ];
        for (key, shape) in rows {
            assert_eq!(key_shape(key).0, shape, "{key}");
        }
        let group = |keys: &[&str]| -> Vec<(String, Vec<Placeholder>)> {
            keys.iter()
                .map(|k| (k.to_string(), key_shape(k).1))
                .collect()
        };
        assert_eq!(
            varying_part(&group(&["py3.11-run7", "py3.11-run8"])),
            VolatilePart::RunNumber
        );
        assert_eq!(
            varying_part(&group(&["b-1764760000123", "b-1764760099999"])),
            VolatilePart::Timestamp
        );
        assert_eq!(budget_setting(123_456), "121K");
        assert_eq!(budget_setting(3 << 20), "3M");
        assert_eq!(budget_setting(500), "500");
        assert_eq!(common_prefix_len("deps-v1-", "deps-v2-5"), 6);
    }
}
