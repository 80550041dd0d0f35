//! Eviction with a manual clock: by age, by size in LRU order, stale reservations, dry runs, and
//! the blobs that go with evicted entries.

use runner::store::index::{EntryState, EventKind, EvictionPolicy, LookupQuery};

use super::{DAY, Harness, MINUTE, Spec, T0};

crate::backend_matrix!(crate::store::Harness:
    evicts_entries_unused_for_ttl,
    evicts_least_recently_used_above_budget,
    expires_stale_reservations,
    dry_run_removes_nothing,
    shared_blobs_survive_until_unreferenced,
    prune_runs_on_one_node_at_a_time,
);

fn policy(ttl_days: u32, max_size_bytes: u64) -> EvictionPolicy {
    EvictionPolicy {
        ttl_days,
        max_size_bytes,
        ..EvictionPolicy::default()
    }
}

fn touch(h: &Harness, key: &str) {
    let hit = h
        .index()
        .lookup(&LookupQuery {
            repository: "octo/repo".into(),
            scopes: vec!["refs/heads/main".into()],
            keys: vec![key.into()],
            version: "v1".into(),
        })
        .expect("lookup");
    assert!(hit.is_some(), "{key} should be found");
}

fn keys(entries: &[runner::store::index::Entry]) -> Vec<String> {
    entries.iter().map(|e| e.key.clone()).collect()
}

fn remaining(h: &Harness) -> Vec<String> {
    let mut k = keys(&h.index().list(&Default::default()).expect("list"));
    k.sort();
    k
}

fn evicts_entries_unused_for_ttl(h: &Harness) {
    let mut store = h.reopen();
    store.set_blob_grace(0);
    h.save(&Spec::new("refs/heads/main", "old"), b"old bytes");
    h.save(&Spec::new("refs/heads/main", "used"), b"used bytes");
    h.clock.advance(3 * DAY);
    h.save(&Spec::new("refs/heads/main", "young"), b"young bytes");
    h.clock.advance(2 * DAY);
    touch(h, "used");
    // Day 7 + 1 minute after the first saves: "old" crossed the TTL, "used" was read on day 5.
    h.clock.set(T0 + 7 * DAY + MINUTE);
    let evicted = store.evict(&policy(7, u64::MAX)).expect("evict");
    assert_eq!(keys(&evicted), vec!["old"]);
    assert_eq!(remaining(h), vec!["used", "young"]);
    let old_digest = evicted[0].blob_digest.clone().expect("digest");
    assert!(!h.store.blobs().contains(&old_digest).expect("contains"));
    // Exactly at the TTL boundary an entry stays ("used", read on day 5); past it, it goes.
    h.clock.set(T0 + 5 * DAY + 7 * DAY);
    assert_eq!(
        keys(&store.evict(&policy(7, u64::MAX)).expect("evict")),
        vec!["young"]
    );
    h.clock.advance(1);
    assert_eq!(
        keys(&store.evict(&policy(7, u64::MAX)).expect("evict")),
        vec!["used"]
    );
    let events = h.index().events(T0).expect("events");
    let evicts: Vec<(&str, Option<u64>)> = events
        .iter()
        .filter(|e| e.event.kind == EventKind::Evict)
        .map(|e| (e.event.key.as_str(), e.event.bytes))
        .collect();
    assert_eq!(
        evicts,
        vec![("old", Some(9)), ("young", Some(11)), ("used", Some(10))]
    );
}

fn evicts_least_recently_used_above_budget(h: &Harness) {
    // Sizes 100 each; budget 250 per repository.
    for key in ["a", "b", "c", "d"] {
        h.clock.advance(MINUTE);
        h.save(
            &Spec::new("refs/heads/main", key),
            &[key.as_bytes()[0]; 100],
        );
    }
    // Another repository's entries count against its own budget only.
    for key in ["x", "y"] {
        h.clock.advance(MINUTE);
        h.save(
            &Spec {
                repository: "other/repo",
                ..Spec::new("refs/heads/main", key)
            },
            &[key.as_bytes()[0]; 100],
        );
    }
    // Recency order now (oldest first): b, d, a, c.
    for key in ["b", "d", "a", "c"] {
        h.clock.advance(MINUTE);
        touch(h, key);
    }
    let mut store = h.reopen();
    store.set_blob_grace(0);
    let evicted = store.evict(&policy(7, 250)).expect("evict");
    assert_eq!(keys(&evicted), vec!["b", "d"]);
    assert_eq!(remaining(h), vec!["a", "c", "x", "y"]);
    for e in &evicted {
        let digest = e.blob_digest.clone().expect("digest");
        assert!(
            !h.store.blobs().contains(&digest).expect("contains"),
            "{} blob kept",
            e.key
        );
    }
    // Within budget now: nothing more goes.
    assert!(store.evict(&policy(7, 250)).expect("evict").is_empty());
    assert_eq!(keys(&store.evict(&policy(7, 0)).expect("evict")).len(), 4);
}

fn expires_stale_reservations(h: &Harness) {
    let idx = h.index();
    idx.reserve(&Spec::new("refs/heads/main", "stale").new_entry())
        .expect("reserve");
    h.clock.advance(30 * MINUTE);
    idx.reserve(&Spec::new("refs/heads/main", "fresh").new_entry())
        .expect("reserve");
    h.clock.advance(31 * MINUTE);
    let evicted = h.store.evict(&policy(7, u64::MAX)).expect("evict");
    assert_eq!(keys(&evicted), vec!["stale"]);
    assert_eq!(evicted[0].state, EntryState::Reserved);
    let left = idx
        .list(&runner::store::index::ListFilter {
            include_reserved: true,
            ..Default::default()
        })
        .expect("list");
    assert_eq!(keys(&left), vec!["fresh"]);
    // Reservations are not entries: no evict event.
    assert!(idx.events(T0).expect("events").is_empty());
}

fn dry_run_removes_nothing(h: &Harness) {
    h.save(&Spec::new("refs/heads/main", "a"), &[1; 100]);
    h.clock.advance(MINUTE);
    h.save(&Spec::new("refs/heads/main", "b"), &[2; 100]);
    let dry = EvictionPolicy {
        dry_run: true,
        ..policy(7, 150)
    };
    let mut store = h.reopen();
    store.set_blob_grace(0);
    let would = store.evict(&dry).expect("dry run");
    assert_eq!(keys(&would), vec!["a"]);
    assert_eq!(remaining(h), vec!["a", "b"]);
    assert_eq!(h.store.blobs().list().expect("list").len(), 2);
    assert!(h.index().events(T0).expect("events").is_empty());
    let real = store.evict(&policy(7, 150)).expect("evict");
    assert_eq!(keys(&real), keys(&would));
}

fn shared_blobs_survive_until_unreferenced(h: &Harness) {
    let mut store = h.reopen();
    store.set_blob_grace(0);
    let a = h.save(&Spec::new("refs/heads/main", "a"), b"same bytes");
    h.clock.advance(2 * DAY);
    let b = h.save(&Spec::new("refs/heads/dev", "b"), b"same bytes");
    assert_eq!(a.blob_digest, b.blob_digest);
    let digest = a.blob_digest.clone().expect("digest");
    h.clock.set(T0 + 8 * DAY);
    assert_eq!(
        keys(&store.evict(&policy(7, u64::MAX)).expect("evict")),
        vec!["a"]
    );
    assert!(
        h.store.blobs().contains(&digest).expect("contains"),
        "still used by b"
    );
    h.clock.set(T0 + 10 * DAY);
    assert_eq!(
        keys(&store.evict(&policy(7, u64::MAX)).expect("evict")),
        vec!["b"]
    );
    assert!(!h.store.blobs().contains(&digest).expect("contains"));
}

/// On PostgreSQL several servers share the index; while one prunes (holding the maintenance
/// lease) another's prune does nothing. SQLite serialises writers and needs no lease.
fn prune_runs_on_one_node_at_a_time(h: &Harness) {
    h.save(&Spec::new("refs/heads/main", "old"), &[1; 10]);
    h.clock.advance(8 * DAY);
    let lease = h.index().maintenance_lease(false).expect("lease");
    assert!(lease.is_some(), "{}", h.backend);
    let other = h.reopen();
    let held_elsewhere = h.backend == "postgres";
    assert_eq!(
        other
            .index()
            .maintenance_lease(false)
            .expect("lease")
            .is_none(),
        held_elsewhere,
        "{}",
        h.backend
    );
    let evicted = other.evict(&policy(7, u64::MAX)).expect("evict");
    assert_eq!(evicted.is_empty(), held_elsewhere, "{}", h.backend);
    drop(lease);
    if held_elsewhere {
        assert_eq!(
            keys(&other.evict(&policy(7, u64::MAX)).expect("evict")),
            vec!["old"]
        );
    }
    assert!(remaining(h).is_empty(), "{}", h.backend);
}
