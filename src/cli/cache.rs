//! `runner cache`: list, show, delete, clear, stats, analyze, prune, verify (like `gh cache`),
//! and `dir` (like `uv cache dir`).

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::bail;
use runner::cache::Cache;
use runner::clock::{Clock, SystemClock};
use runner::store::index::{Entry, EntryState, EventKind, ListFilter, ListSort, Stats};
use runner::store::owner::{Liveness, Owner};
use serde_json::{Map, Value, json};

use super::json::{document, put_time};
use super::printer::Printer;
use super::{EXIT_FAILED, EXIT_OK, Failure, StoreArgs};

/// `runner cache`: the store settings and the verb.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: CacheCommand,
}

impl CacheArgs {
    /// True when the verb prints one JSON document.
    pub fn json(&self) -> bool {
        match &self.command {
            CacheCommand::List { common, fields, .. } => common.json || !fields.is_empty(),
            CacheCommand::Show { common, .. }
            | CacheCommand::Delete { common, .. }
            | CacheCommand::Clear { common, .. }
            | CacheCommand::Stats { common, .. }
            | CacheCommand::Analyze { common, .. }
            | CacheCommand::Prune { common, .. }
            | CacheCommand::Verify { common, .. } => common.json,
            CacheCommand::Dir { output } => output.json,
        }
    }
}

/// Options every `runner cache` verb takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// `owner/name`; defaults to the current directory's `origin` remote (all repositories when
    /// there is none; `prune` and `verify` default to the whole store).
    #[arg(long, short = 'R', value_name = "OWNER/NAME")]
    repository: Option<String>,
    /// Print one JSON document instead of text (docs/json.md).
    #[arg(long)]
    json: bool,
}

/// Options of verbs that only print.
#[derive(Debug, Clone, clap::Args)]
pub struct Output {
    /// Print one JSON document instead of text (docs/json.md).
    #[arg(long)]
    json: bool,
}

/// Sort orders of `list`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SortBy {
    /// Newest first.
    Created,
    /// Most recently used first.
    LastUsed,
    /// Largest first.
    Size,
}

/// The fields of an entry in JSON output, in the order they are printed (`--fields` picks some).
pub const ENTRY_FIELDS: &[&str] = &[
    "id",
    "repository",
    "ref",
    "key",
    "version",
    "paths",
    "compression",
    "blob_digest",
    "size",
    "created_at",
    "created_at_ms",
    "last_accessed_at",
    "last_accessed_at_ms",
    "access_count",
    "created_by_run",
];

/// The `runner cache` verbs.
#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// List cache entries.
    List {
        /// Only keys starting with this prefix (case-insensitive).
        #[arg(long, short = 'k')]
        key: Option<String>,
        /// Only entries saved by this ref (`refs/heads/main`).
        #[arg(long = "ref", short = 'r', value_name = "REF")]
        git_ref: Option<String>,
        /// Sort order.
        #[arg(long, short = 'S', value_enum, default_value = "created")]
        sort: SortBy,
        /// At most this many entries.
        #[arg(long, short = 'L')]
        limit: Option<usize>,
        /// List reservations (saves in progress, or left by a killed save) with their owner
        /// instead of entries.
        #[arg(long)]
        reserved: bool,
        /// Every repository, not only the current one.
        #[arg(long, short = 'a', conflicts_with = "repository")]
        all: bool,
        /// JSON with only these entry fields, comma-separated (implies --json): id, repository,
        /// ref, key, version, paths, compression, blob_digest, size, created_at(_ms),
        /// last_accessed_at(_ms), access_count, created_by_run.
        #[arg(long, value_name = "FIELD,...", value_delimiter = ',')]
        fields: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Show one entry (by id, or every entry with this key).
    Show {
        /// An entry id or a key.
        key_or_id: String,
        /// Only entries saved by this ref.
        #[arg(long = "ref", short = 'r', value_name = "REF")]
        git_ref: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Delete an entry by id, or every entry with this key.
    Delete {
        /// An entry id or a key.
        key_or_id: String,
        /// Only entries saved by this ref.
        #[arg(long = "ref", short = 'r', value_name = "REF")]
        git_ref: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Delete every entry of the repository.
    Clear {
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Entries, size, hit rates, bytes moved and top keys over a window.
    Stats {
        /// The window: days (`7`), or `30m`, `24h`, `7d`, `2w`.
        #[arg(long, default_value = "7d")]
        since: String,
        /// How many top keys to show.
        #[arg(long, default_value_t = 5)]
        top: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Hit rates per key prefix and restore level, and findings with recommendations: keys
    /// that never hit or change every run, restore keys that never match, size evictions,
    /// duplicate content, time saved.
    Analyze {
        /// The window: days (`7`), or `30m`, `24h`, `7d`, `2w` (as `stats`).
        #[arg(long, default_value = "7d")]
        since: String,
        /// Distinct keys of one shape, none restored exactly, that make a key changing on every
        /// run.
        #[arg(long, default_value_t = 3)]
        min_keys: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Apply the eviction policy now (--cache-ttl-days, --cache-max-size); with -R, evict only
    /// that repository's entries.
    Prune {
        /// Only show what would be evicted.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Re-hash every blob; remove rows without blobs and blobs without rows. Blobs are shared
    /// by repositories, so the check covers the whole store; -R lists only that repository's
    /// rows.
    Verify {
        /// Only report problems.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Print the store directory (and where the index and blobs are, with --json).
    Dir {
        #[command(flatten)]
        output: Output,
    },
}

/// Runs the verb; returns the exit code.
pub fn run(args: CacheArgs, printer: &mut Printer) -> anyhow::Result<u8> {
    if let CacheCommand::Dir { output } = &args.command {
        return dir(&args.store, output.json, printer);
    }
    let cache = args.store.open()?;
    let mut out: Vec<u8> = Vec::new();
    let code = verb(args.command, &cache, &mut out, printer)?;
    printer.data_text(&String::from_utf8_lossy(&out));
    Ok(code)
}

/// `runner cache dir`.
fn dir(store: &StoreArgs, json: bool, printer: &mut Printer) -> anyhow::Result<u8> {
    let location = store.location()?;
    if json {
        let index = location.database_url.clone().unwrap_or_else(|| {
            runner::store::sqlite_url(&location.dir.join(runner::store::INDEX_FILE))
        });
        let blobs = location.blobs_url.clone().unwrap_or_else(|| {
            location
                .dir
                .join(runner::store::blob::LAYOUT_DIR)
                .display()
                .to_string()
        });
        printer.json_document(&document(
            "runner.cache.dir/1",
            json!({
                "dir": location.dir.display().to_string(),
                "index": redact_url(&index),
                "blobs": blobs,
            }),
        ));
    } else {
        printer.data(&location.dir.display().to_string());
    }
    Ok(EXIT_OK)
}

/// A URL without its password (`postgres://user:secret@host` prints as `user:***@host`).
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

fn verb(
    command: CacheCommand,
    cache: &Cache,
    out: &mut Vec<u8>,
    printer: &mut Printer,
) -> anyhow::Result<u8> {
    let clock = SystemClock;
    match command {
        CacheCommand::List {
            key,
            git_ref,
            sort,
            limit,
            reserved,
            all,
            fields,
            common,
        } => {
            check_fields(&fields)?;
            let repository = if all { None } else { repository(&common) };
            let mut filter = ListFilter {
                repository: repository.clone(),
                key_prefix: key,
                scope: git_ref,
                sort: match sort {
                    SortBy::Created => ListSort::Created,
                    SortBy::LastUsed => ListSort::LastUsed,
                    SortBy::Size => ListSort::Size,
                },
                limit: if reserved { None } else { limit },
                include_reserved: reserved,
            };
            let mut entries = cache.index().list(&filter)?;
            if reserved {
                entries.retain(|e| e.state == EntryState::Reserved);
                entries.truncate(limit.unwrap_or(usize::MAX));
                print_reservations(out, &entries, repository.as_deref(), common.json)?;
                return Ok(EXIT_OK);
            }
            // Nothing here: say where the entries are, as the filter may be the surprise.
            let elsewhere = match (&repository, entries.is_empty()) {
                (Some(repo), true) => {
                    filter.repository = None;
                    filter.limit = None;
                    let others: Vec<Entry> = cache
                        .index()
                        .list(&filter)?
                        .into_iter()
                        .filter(|e| &e.repository != repo)
                        .collect();
                    let repos: BTreeSet<&str> =
                        others.iter().map(|e| e.repository.as_str()).collect();
                    Some((others.len(), repos.len()))
                }
                _ => None,
            };
            if common.json || !fields.is_empty() {
                let mut doc = json!({
                    "repository": repository,
                    "entries": entries_json(&entries, &fields),
                });
                if let Some((count, repos)) = elsewhere {
                    doc["elsewhere"] = json!({"entries": count, "repositories": repos});
                }
                write_json(out, &document("runner.cache.list/1", doc))?;
            } else {
                print_entries(out, &entries, repository.as_deref(), elsewhere)?;
            }
            Ok(EXIT_OK)
        }
        CacheCommand::Show {
            key_or_id,
            git_ref,
            common,
        } => {
            let entries = resolve(cache, &key_or_id, git_ref.as_deref(), &common)?;
            if common.json {
                let doc = json!({"entries": entries_json(&entries, &[])});
                write_json(out, &document("runner.cache.show/1", doc))?;
            } else {
                for (i, entry) in entries.iter().enumerate() {
                    if i > 0 {
                        writeln!(out)?;
                    }
                    print_entry(out, entry)?;
                }
            }
            Ok(EXIT_OK)
        }
        CacheCommand::Delete {
            key_or_id,
            git_ref,
            common,
        } => {
            let entries = resolve(cache, &key_or_id, git_ref.as_deref(), &common)?;
            let deleted = delete_all(cache, &entries)?;
            report_deleted(out, &deleted, common.json)?;
            Ok(EXIT_OK)
        }
        CacheCommand::Clear { yes, common } => {
            let repository = repository(&common);
            let filter = ListFilter {
                repository: repository.clone(),
                ..ListFilter::default()
            };
            let entries = cache.index().list(&filter)?;
            if entries.is_empty() {
                report_deleted(out, &entries, common.json)?;
                return Ok(EXIT_OK);
            }
            if !yes {
                let what = repository.as_deref().unwrap_or("all repositories");
                if !std::io::stdin().is_terminal() {
                    bail!(
                        "refusing to delete {} cache entries of {what} without confirmation: pass --yes",
                        entries.len()
                    );
                }
                printer.notice(&format!(
                    "Delete {} cache entries of {what}? [y/N] ",
                    entries.len()
                ));
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
                    return Err(Failure::new(EXIT_FAILED, "nothing deleted").into());
                }
            }
            let deleted = delete_all(cache, &entries)?;
            report_deleted(out, &deleted, common.json)?;
            Ok(EXIT_OK)
        }
        CacheCommand::Stats { since, top, common } => {
            let Some(window) = parse_window(&since) else {
                bail!("invalid --since '{since}': expected a number and one of m, h, d, w");
            };
            let repository = repository(&common);
            let start = clock.now_millis().saturating_sub(window);
            let mut stats = cache.index().stats(start, repository.as_deref())?;
            stats.top_keys.truncate(top);
            if common.json {
                write_json(
                    out,
                    &stats_json(&stats, &since, start, repository.as_deref()),
                )?;
            } else {
                print_stats(out, &stats, &since)?;
            }
            Ok(EXIT_OK)
        }
        CacheCommand::Analyze {
            since,
            min_keys,
            common,
        } => {
            let Some(window) = parse_window(&since) else {
                bail!("invalid --since '{since}': expected a number and one of m, h, d, w");
            };
            let options = runner::cache::analyze::AnalyzeOptions {
                repository: repository(&common),
                since: clock.now_millis().saturating_sub(window),
                budget_bytes: cache.options().eviction.max_size_bytes,
                volatile_min_keys: min_keys,
            };
            let report = runner::cache::analyze::analyze(cache.store(), &options)?;
            super::analyze::print(out, &report, &since, common.json)?;
            Ok(EXIT_OK)
        }
        CacheCommand::Prune { dry_run, common } => {
            let repository = common.repository.clone();
            let evicted = match &repository {
                None => cache.prune(dry_run)?,
                // The policy judges the whole store (budgets are per repository); only this
                // repository's share is removed.
                Some(repo) => {
                    let mine: Vec<Entry> = cache
                        .prune(true)?
                        .into_iter()
                        .filter(|e| &e.repository == repo)
                        .collect();
                    if dry_run {
                        mine
                    } else {
                        delete_all(cache, &mine)?
                    }
                }
            };
            if common.json {
                let doc = json!({
                    "dry_run": dry_run,
                    "repository": repository,
                    "evicted": entries_json(&evicted, &[]),
                });
                write_json(out, &document("runner.cache.prune/1", doc))?;
            } else {
                let verb = if dry_run { "Would evict" } else { "Evicted" };
                let bytes: u64 = evicted.iter().map(|e| e.size_bytes).sum();
                writeln!(
                    out,
                    "{verb} {} entries ({})",
                    evicted.len(),
                    human_size(bytes)
                )?;
                for entry in &evicted {
                    writeln!(
                        out,
                        "  {}  {}  {}",
                        entry.key,
                        entry.scope,
                        human_size(entry.size_bytes)
                    )?;
                }
            }
            Ok(EXIT_OK)
        }
        CacheCommand::Verify { dry_run, common } => {
            let mut report = cache.verify(dry_run)?;
            if let Some(repo) = &common.repository {
                report.rows_without_blob.retain(|e| &e.repository == repo);
                report
                    .abandoned_reservations
                    .retain(|e| &e.repository == repo);
            }
            let problems = report.rows_without_blob.len()
                + report.orphan_blobs.len()
                + report.corrupt_blobs.len();
            if common.json {
                let value = json!({
                    "dry_run": dry_run,
                    "repository": common.repository,
                    "result": if problems > 0 { "problems" } else { "ok" },
                    "blobs_checked": report.blobs_checked,
                    "corrupt_blobs": report.corrupt_blobs,
                    "orphan_blobs": report.orphan_blobs.iter().map(|b| json!({"digest": b.digest, "size": b.size})).collect::<Vec<_>>(),
                    "rows_without_blob": entries_json(&report.rows_without_blob, &[]),
                    "abandoned_reservations": entries_json(&report.abandoned_reservations, &[]),
                    "temp_files_removed": report.temp_files_removed,
                });
                write_json(out, &document("runner.cache.verify/1", value))?;
            } else {
                writeln!(out, "Blobs checked: {}", report.blobs_checked)?;
                writeln!(out, "Corrupt blobs: {}", report.corrupt_blobs.len())?;
                for digest in &report.corrupt_blobs {
                    writeln!(out, "  {digest}")?;
                }
                writeln!(out, "Rows without blob: {}", report.rows_without_blob.len())?;
                for entry in &report.rows_without_blob {
                    writeln!(
                        out,
                        "  {}  {}  {}",
                        entry.id,
                        entry.key,
                        entry.blob_digest.as_deref().unwrap_or("-")
                    )?;
                }
                writeln!(out, "Blobs without row: {}", report.orphan_blobs.len())?;
                for blob in &report.orphan_blobs {
                    writeln!(out, "  {}  {}", blob.digest, human_size(blob.size))?;
                }
                // Reservations of dead savers are reclaimed as a matter of course: listed,
                // not counted as damage.
                writeln!(
                    out,
                    "Abandoned reservations: {}",
                    report.abandoned_reservations.len()
                )?;
                for entry in &report.abandoned_reservations {
                    writeln!(out, "  {}  {}", entry.id, entry.key)?;
                }
                if problems > 0 {
                    let done = if dry_run {
                        "not removed (--dry-run)"
                    } else {
                        "removed"
                    };
                    writeln!(out, "Problems {done}.")?;
                }
            }
            Ok(if problems > 0 && dry_run {
                EXIT_FAILED
            } else {
                EXIT_OK
            })
        }
        CacheCommand::Dir { .. } => Ok(EXIT_OK),
    }
}

fn write_json(out: &mut Vec<u8>, value: &Value) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// `--fields` must name entry fields.
fn check_fields(fields: &[String]) -> anyhow::Result<()> {
    for field in fields {
        if !ENTRY_FIELDS.contains(&field.trim()) {
            bail!(
                "unknown field '{field}' for --fields; available: {}",
                ENTRY_FIELDS.join(", ")
            );
        }
    }
    Ok(())
}

/// `--repository`, else the current checkout's origin.
fn repository(common: &Common) -> Option<String> {
    common
        .repository
        .clone()
        .or_else(|| runner::exec::git::inspect(Path::new(".")).repository)
}

/// The entries `key_or_id` names: the entry with that id, else those with that key; an error
/// (exit 1) when there are none.
fn resolve(
    cache: &Cache,
    key_or_id: &str,
    git_ref: Option<&str>,
    common: &Common,
) -> anyhow::Result<Vec<Entry>> {
    if let Some(entry) = cache.index().get(key_or_id)? {
        return Ok(vec![entry]);
    }
    let repository = repository(common);
    let entries = cache
        .index()
        .find_by_key(repository.as_deref(), git_ref, key_or_id)?;
    if entries.is_empty() {
        let place = match &repository {
            Some(repo) => format!(" in {repo}"),
            None => String::new(),
        };
        return Err(Failure::new(
            EXIT_FAILED,
            format!("no cache entry matches '{key_or_id}'{place}"),
        )
        .into());
    }
    Ok(entries)
}

fn delete_all(cache: &Cache, entries: &[Entry]) -> anyhow::Result<Vec<Entry>> {
    let mut deleted = Vec::new();
    for entry in entries {
        if let Some(gone) = cache.delete(&entry.id)? {
            deleted.push(gone);
        }
    }
    Ok(deleted)
}

fn report_deleted(out: &mut Vec<u8>, deleted: &[Entry], json: bool) -> anyhow::Result<()> {
    if json {
        let value = json!({"deleted": deleted.len(), "entries": entries_json(deleted, &[])});
        write_json(out, &document("runner.cache.delete/1", value))?;
    } else {
        writeln!(out, "Deleted {} cache entries", deleted.len())?;
        for entry in deleted {
            writeln!(out, "  {}  {}  {}", entry.key, entry.scope, entry.id)?;
        }
    }
    Ok(())
}

/// One entry in JSON output, all of [`ENTRY_FIELDS`].
fn entry_json(e: &Entry) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("id".into(), json!(e.id));
    o.insert("repository".into(), json!(e.repository));
    o.insert("ref".into(), json!(e.scope));
    o.insert("key".into(), json!(e.key));
    o.insert("version".into(), json!(e.version));
    o.insert("paths".into(), json!(e.paths));
    o.insert("compression".into(), json!(e.compression));
    o.insert("blob_digest".into(), json!(e.blob_digest));
    o.insert("size".into(), json!(e.size_bytes));
    put_time(&mut o, "created_at", e.created_at);
    put_time(&mut o, "last_accessed_at", e.last_accessed_at);
    o.insert("access_count".into(), json!(e.access_count));
    o.insert("created_by_run".into(), json!(e.created_by_run));
    o
}

/// Entries in JSON output, with only `fields` when some are given.
fn entries_json(entries: &[Entry], fields: &[String]) -> Value {
    entries
        .iter()
        .map(|e| {
            let mut all = entry_json(e);
            if fields.is_empty() {
                return Value::Object(all);
            }
            let picked: Map<String, Value> = fields
                .iter()
                .filter_map(|f| all.remove_entry(f.trim()))
                .collect();
            Value::Object(picked)
        })
        .collect()
}

fn stats_json(s: &Stats, window: &str, start: i64, repository: Option<&str>) -> Value {
    let lookups =
        s.count(EventKind::HitExact) + s.count(EventKind::HitPartial) + s.count(EventKind::Miss);
    let mut doc = json!({
        "repository": repository,
        "window": window,
        "entries": s.entries,
        "total_size": s.total_size_bytes,
        "reserved": s.reserved,
        "lookups": lookups,
        "hits_exact": s.count(EventKind::HitExact),
        "hits_partial": s.count(EventKind::HitPartial),
        "misses": s.count(EventKind::Miss),
        "saves": s.count(EventKind::Save),
        "skips": s.count(EventKind::Skip),
        "evictions": s.count(EventKind::Evict),
        "errors": s.count(EventKind::Error),
        "hit_rate": s.hit_rate,
        "bytes_restored": s.bytes_restored,
        "bytes_saved": s.bytes_saved,
        "top_keys": s.top_keys.iter().map(|k| json!({"key": k.key, "hits": k.hits})).collect::<Vec<_>>(),
    });
    if let Value::Object(o) = &mut doc {
        put_time(o, "since", start);
    }
    document("runner.cache.stats/1", doc)
}

fn print_entries(
    out: &mut Vec<u8>,
    entries: &[Entry],
    repository: Option<&str>,
    elsewhere: Option<(usize, usize)>,
) -> anyhow::Result<()> {
    if entries.is_empty() {
        match (repository, elsewhere) {
            (Some(repo), Some((count, repos))) if count > 0 => {
                let entries = if count == 1 { "entry" } else { "entries" };
                let other = if repos == 1 {
                    "other repository"
                } else {
                    "other repositories"
                };
                writeln!(
                    out,
                    "No cache entries for {repo}; {count} {entries} in {repos} {other}: -R or --all"
                )?;
            }
            (Some(repo), _) => writeln!(out, "No cache entries for {repo}")?,
            (None, _) => writeln!(out, "No cache entries")?,
        }
        return Ok(());
    }
    let headers = ["KEY", "REF", "SIZE", "CREATED", "LAST USED", "ID"];
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.key.clone(),
                e.scope.clone(),
                human_size(e.size_bytes),
                format_time(e.created_at),
                format_time(e.last_accessed_at),
                e.id.clone(),
            ]
        })
        .collect();
    print_table(out, headers, &rows)
}

/// Who holds a reservation and whether it still runs: `alive`, `dead` (the next save or prune
/// reclaims it), or `unknown` (another host; it expires after the reservation TTL).
fn reservation_owner(e: &Entry) -> (String, &'static str) {
    match e.owner.as_deref().and_then(Owner::parse) {
        Some(owner) => (
            format!("pid {} on {}", owner.pid, owner.host),
            match owner.liveness() {
                Liveness::Alive => "alive",
                Liveness::Dead => "dead",
                Liveness::Unknown => "unknown",
            },
        ),
        None => ("-".to_string(), "unknown"),
    }
}

fn print_reservations(
    out: &mut Vec<u8>,
    entries: &[Entry],
    repository: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let rows: Vec<Value> = entries
            .iter()
            .map(|e| {
                let (_, status) = reservation_owner(e);
                let mut row = json!({
                    "id": e.id,
                    "repository": e.repository,
                    "ref": e.scope,
                    "key": e.key,
                    "version": e.version,
                    "owner": e.owner.as_deref().and_then(Owner::parse).map(|o| json!({
                        "host": o.host,
                        "pid": o.pid,
                    })),
                    "owner_status": status,
                    "created_by_run": e.created_by_run,
                });
                if let Value::Object(o) = &mut row {
                    put_time(o, "reserved_at", e.created_at);
                }
                row
            })
            .collect();
        let doc = json!({"repository": repository, "reservations": rows});
        return write_json(out, &document("runner.cache.reservations/1", doc));
    }
    if entries.is_empty() {
        writeln!(out, "No reservations")?;
        return Ok(());
    }
    let headers = ["KEY", "REF", "RESERVED", "OWNER", "STATUS", "ID"];
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            let (owner, status) = reservation_owner(e);
            [
                e.key.clone(),
                e.scope.clone(),
                format_time(e.created_at),
                owner,
                status.to_string(),
                e.id.clone(),
            ]
        })
        .collect();
    print_table(out, headers, &rows)
}

fn print_table(out: &mut Vec<u8>, headers: [&str; 6], rows: &[[String; 6]]) -> anyhow::Result<()> {
    let mut widths = headers.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(&headers))?;
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
}

fn print_entry(out: &mut Vec<u8>, e: &Entry) -> anyhow::Result<()> {
    writeln!(out, "ID:          {}", e.id)?;
    writeln!(out, "Key:         {}", e.key)?;
    writeln!(out, "Repository:  {}", e.repository)?;
    writeln!(out, "Ref:         {}", e.scope)?;
    writeln!(out, "Version:     {}", e.version)?;
    writeln!(out, "Paths:       {}", e.paths.join(", "))?;
    writeln!(out, "Compression: {}", e.compression)?;
    writeln!(
        out,
        "Size:        {} ({} B)",
        human_size(e.size_bytes),
        e.size_bytes
    )?;
    writeln!(
        out,
        "Blob:        {}",
        e.blob_digest.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "Created:     {}", format_time(e.created_at))?;
    writeln!(out, "Last used:   {}", format_time(e.last_accessed_at))?;
    writeln!(out, "Restores:    {}", e.access_count)?;
    writeln!(
        out,
        "Saved by:    run {}",
        e.created_by_run.as_deref().unwrap_or("-")
    )?;
    Ok(())
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn print_stats(out: &mut Vec<u8>, s: &Stats, window: &str) -> anyhow::Result<()> {
    let exact = s.count(EventKind::HitExact);
    let partial = s.count(EventKind::HitPartial);
    let misses = s.count(EventKind::Miss);
    let lookups = exact + partial + misses;
    writeln!(out, "Entries:        {}", s.entries)?;
    writeln!(out, "Total size:     {}", human_size(s.total_size_bytes))?;
    writeln!(out, "Last {window}:")?;
    writeln!(out, "  Lookups:      {lookups}")?;
    writeln!(out, "  Exact hits:   {exact} ({})", percent(exact, lookups))?;
    writeln!(
        out,
        "  Partial hits: {partial} ({})",
        percent(partial, lookups)
    )?;
    writeln!(
        out,
        "  Misses:       {misses} ({})",
        percent(misses, lookups)
    )?;
    writeln!(out, "  Saves:        {}", s.count(EventKind::Save))?;
    writeln!(out, "  Evictions:    {}", s.count(EventKind::Evict))?;
    writeln!(out, "  Errors:       {}", s.count(EventKind::Error))?;
    writeln!(out, "  Restored:     {}", human_size(s.bytes_restored))?;
    writeln!(out, "  Saved:        {}", human_size(s.bytes_saved))?;
    if !s.top_keys.is_empty() {
        writeln!(out, "Top keys:")?;
        for k in &s.top_keys {
            writeln!(out, "  {:>6}  {}", k.hits, k.key)?;
        }
    }
    Ok(())
}

/// `1.5 MB`-style sizes (powers of 1024, as GitHub's cache page).
fn human_size(bytes: u64) -> String {
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

/// `30m`, `24h`, `7d`, `2w`, or a bare number of days, in milliseconds.
fn parse_window(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let (number, ms) = if unit.is_ascii_digit() {
        (text, 86_400_000)
    } else {
        let ms = match unit {
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => return None,
        };
        (&text[..text.len() - unit.len_utf8()], ms)
    };
    let number: i64 = number.parse().ok()?;
    (number > 0).then(|| number.saturating_mul(ms))
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
fn format_time(millis: i64) -> String {
    let t = runner::clock::UtcTime::from_millis(millis);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_rows() {
        let rows = [
            (0, "1970-01-01 00:00:00"),
            (951_782_400_000, "2000-02-29 00:00:00"),
            (1_763_721_296_000, "2025-11-21 10:34:56"),
        ];
        for (millis, expected) in rows {
            assert_eq!(format_time(millis), expected, "{millis}");
        }
    }

    #[test]
    fn window_and_size_rows() {
        assert_eq!(parse_window("30m"), Some(1_800_000));
        assert_eq!(parse_window("7d"), Some(604_800_000));
        assert_eq!(parse_window("2w"), Some(1_209_600_000));
        assert_eq!(parse_window("0d"), None);
        assert_eq!(parse_window("7"), Some(604_800_000));
        assert_eq!(parse_window("-7"), None);
        assert_eq!(parse_window("7x"), None);
        assert_eq!(parse_window("d"), None);
        assert_eq!(parse_window("é"), None);
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(10 << 30), "10.0 GB");
    }
}
