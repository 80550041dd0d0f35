//! Schema version 2 additions: broken entries, restore roots, run numbers.

use std::collections::BTreeSet;

use runner::store::index::{
    EntryUse, EventDetail, EventKind, EvictionPolicy, LookupQuery, LookupRecord, NewEntry,
    NewEvent, Reservation,
};

use super::{Harness, MINUTE, Spec};

crate::backend_matrix!(crate::store::Harness:
    broken_entries_are_skipped_evicted_and_replaced,
    roots_are_kept_from_reserve_to_lookup,
    run_numbers_count_per_workflow,
    found_lookups_are_recorded_later_in_one_batch,
);

fn query(keys: &[&str]) -> LookupQuery {
    LookupQuery {
        repository: "octo/repo".into(),
        scopes: vec!["refs/heads/main".into()],
        keys: keys.iter().map(|k| k.to_string()).collect(),
        version: "v1".into(),
    }
}

fn matched(h: &Harness, keys: &[&str]) -> Option<String> {
    h.index()
        .lookup(&query(keys))
        .expect("lookup")
        .map(|hit| hit.entry.id)
}

fn broken_entries_are_skipped_evicted_and_replaced(h: &Harness) {
    let older = h.save(&Spec::new("refs/heads/main", "deps-older"), b"older");
    h.clock.advance(MINUTE);
    let broken = h.save(&Spec::new("refs/heads/main", "deps"), b"broken");
    assert_eq!(matched(h, &["deps"]), Some(broken.id.clone()));

    assert!(h.index().mark_broken(&broken.id).expect("mark"));
    assert!(!h.index().mark_broken(&broken.id).expect("mark twice"));
    assert!(!h.index().mark_broken("no-such-id").expect("mark unknown"));
    let stored = h.index().get(&broken.id).expect("get").expect("kept");
    assert!(stored.broken_at.is_some(), "{stored:?}");
    // Neither as an exact match nor as the newest prefix match.
    assert_eq!(matched(h, &["deps"]), Some(older.id.clone()));
    assert_eq!(matched(h, &["dep"]), Some(older.id.clone()));

    // A save of the same identity replaces the broken row.
    let spec = Spec::new("refs/heads/main", "deps");
    let Reservation::Reserved(id) = h.index().reserve(&spec.new_entry()).expect("reserve") else {
        panic!("{}: a broken entry blocked its replacement", h.backend);
    };
    assert_ne!(id, broken.id);
    assert!(h.index().get(&broken.id).expect("get").is_none());
    // Only one replacement wins.
    assert_eq!(
        h.index().reserve(&spec.new_entry()).expect("reserve"),
        Reservation::AlreadyExists
    );
    h.index().abort(&id).expect("abort");

    // The next prune evicts a broken entry, and says why.
    let doomed = h.save(&Spec::new("refs/heads/main", "doomed"), b"doomed");
    assert!(h.index().mark_broken(&doomed.id).expect("mark"));
    let evicted = h.store.evict(&EvictionPolicy::default()).expect("evict");
    assert_eq!(
        evicted.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        vec![doomed.id.as_str()]
    );
    let reasons: Vec<(String, Option<String>)> = h
        .index()
        .events(0)
        .expect("events")
        .into_iter()
        .filter(|e| e.event.kind == EventKind::Evict)
        .map(|e| (e.event.key, e.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![("doomed".to_string(), Some("broken".to_string()))]
    );
    assert_eq!(
        crate::support::committed_keys(h.index()),
        vec!["deps-older"]
    );
}

fn roots_are_kept_from_reserve_to_lookup(h: &Harness) {
    let roots = r#"{"~/.npm":"/home/u/.npm","build":"/w/build"}"#;
    let new = NewEntry {
        roots: Some(roots.to_string()),
        ..Spec::new("refs/heads/main", "rooted").new_entry()
    };
    let Reservation::Reserved(id) = h.index().reserve(&new).expect("reserve") else {
        panic!("refused");
    };
    assert_eq!(
        h.index()
            .get(&id)
            .expect("get")
            .and_then(|e| e.roots)
            .as_deref(),
        Some(roots)
    );
    let mut writer = h.store.blobs().writer().expect("writer");
    std::io::Write::write_all(&mut writer, b"rooted bytes").expect("write");
    let committed = h.store.commit_blob(&id, writer).expect("commit");
    assert_eq!(committed.roots.as_deref(), Some(roots));
    let hit = h.index().lookup(&query(&["rooted"])).expect("lookup");
    assert_eq!(hit.and_then(|h| h.entry.roots).as_deref(), Some(roots));
    // Without roots the column stays empty.
    let plain = h.save(&Spec::new("refs/heads/main", "plain"), b"plain");
    assert_eq!(plain.roots, None);
}

fn run_numbers_count_per_workflow(h: &Harness) {
    let idx = h.index();
    let next = |repo: &str, wf: &str| idx.next_run_number(repo, wf).expect("next run number");
    assert_eq!(
        [
            next("octo/repo", ".github/workflows/ci.yml"),
            next("octo/repo", ".github/workflows/ci.yml"),
            next("octo/repo", ".github/workflows/release.yml"),
            next("octo/other", ".github/workflows/ci.yml"),
            next("octo/repo", ".github/workflows/ci.yml"),
        ],
        [1, 2, 1, 1, 3]
    );
    // Concurrent callers on separate handles never share a number.
    const THREADS: usize = 4;
    const EACH: usize = 10;
    let stores: Vec<_> = (0..THREADS).map(|_| h.reopen()).collect();
    let numbers: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .iter()
            .map(|store| {
                s.spawn(move || {
                    (0..EACH)
                        .map(|_| {
                            store
                                .index()
                                .next_run_number("octo/repo", "busy.yml")
                                .expect("next")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect()
    });
    let distinct: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(
        distinct,
        (1..=(THREADS * EACH) as u64).collect::<BTreeSet<_>>(),
        "{}",
        h.backend
    );
}

/// `find` answers like `lookup` without writing; `record_lookups` then marks the entries used
/// and records the events, all in one transaction, passing over an entry deleted meanwhile.
fn found_lookups_are_recorded_later_in_one_batch(h: &Harness) {
    let a = h.save(&Spec::new("refs/heads/main", "deps-a"), b"a");
    let b = h.save(&Spec::new("refs/heads/main", "deps-b"), b"b");
    let before = h.index().get(&a.id).expect("get").expect("a");
    h.clock.advance(MINUTE);
    let found = h
        .index()
        .find(&query(&["deps-a"]))
        .expect("find")
        .expect("hit");
    assert_eq!(found.entry.id, a.id);
    let after_find = h.index().get(&a.id).expect("get").expect("a");
    assert_eq!(
        after_find.last_accessed_at, before.last_accessed_at,
        "find writes nothing"
    );
    assert_eq!(after_find.access_count, before.access_count);
    let events_before = h.index().events(0).expect("events").len();

    let at = runner::clock::Clock::now_millis(&h.clock);
    let record = |id: &str, key: &str| LookupRecord {
        used: Some(EntryUse {
            id: id.to_string(),
            at,
        }),
        event: NewEvent {
            repository: "octo/repo".into(),
            scope: "refs/heads/main".into(),
            kind: EventKind::HitExact,
            key: key.into(),
            matched_key: Some(key.into()),
            bytes: Some(1),
            duration_ms: Some(0),
        },
        detail: EventDetail::default(),
        at,
    };
    // b is deleted before its lookup is recorded: its event stays, its use is passed over.
    h.index().delete(&b.id).expect("delete");
    h.index()
        .record_lookups(&[
            record(&a.id, "deps-a"),
            record(&b.id, "deps-b"),
            record(&a.id, "deps-a"),
        ])
        .expect("record");
    let used = h.index().get(&a.id).expect("get").expect("a");
    assert_eq!(used.last_accessed_at, at);
    assert_eq!(used.access_count, before.access_count + 2);
    let events = h.index().events(0).expect("events");
    assert_eq!(events.len(), events_before + 3, "{}", h.backend);
    assert!(
        events
            .iter()
            .filter(|e| e.at == at)
            .all(|e| e.event.kind == EventKind::HitExact)
    );
}
