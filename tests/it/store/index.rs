//! Index operations: lookup order, reservations, listing, stats.

use runner::store::index::{
    EventKind, IndexError, ListFilter, ListSort, LookupQuery, NewEvent, Reservation,
};

use super::{Harness, MINUTE, Spec, T0, blob_info};

crate::backend_matrix!(crate::store::Harness:
    lookup_follows_github_order,
    hit_marks_entry_used,
    reserve_commit_abort,
    stale_reservation_is_taken_over,
    list_filters_and_sorts,
    get_find_delete,
    stats_summarise_events,
    keys_the_database_cannot_store_are_refused,
    reopening_is_a_no_op_migration,
);

/// Entries saved in this order, one minute apart (so later rows are newer).
const SAVED: &[(&str, &str, &str)] = &[
    // (scope, key, version)
    ("refs/heads/main", "Linux-Deps-ABC", "v1"),
    ("refs/heads/main", "npm-linux-1", "v1"),
    ("refs/heads/main", "npm-linux-2", "v1"),
    ("refs/heads/main", "k", "v1"),
    ("refs/heads/main", "k-newer", "v1"),
    ("refs/heads/main", "rk-a-1", "v1"),
    ("refs/heads/main", "rk-a-2", "v1"),
    ("refs/heads/main", "rk-b-9", "v1"),
    ("refs/heads/main", "exact-rk", "v1"),
    ("refs/heads/main", "exact-rk-newer", "v1"),
    ("refs/heads/main", "both", "v1"),
    ("refs/heads/feature", "both", "v1"),
    ("refs/heads/feature", "feature-only", "v1"),
    ("refs/heads/main", "other-version", "v2"),
    ("refs/heads/main", "a%b", "v1"),
    ("refs/heads/main", "a_b", "v1"),
    ("refs/heads/main", "a\\b", "v1"),
    ("refs/heads/main", "axb", "v1"),
    ("refs/heads/main", "a-c", "v1"),
    ("refs/heads/main", "ab", "v1"),
    ("refs/heads/main", "ÄPFEL-1", "v1"),
    ("refs/heads/main", "x\u{10FFFF}z", "v1"),
    ("refs/heads/main", "y", "v1"),
];

const MAIN: &[&str] = &["refs/heads/main"];
const FEATURE: &[&str] = &["refs/heads/feature", "refs/heads/main"];

fn lookup_follows_github_order(h: &Harness) {
    for (i, (scope, key, version)) in SAVED.iter().enumerate() {
        h.clock.set(T0 + i as i64 * MINUTE);
        let spec = Spec {
            version,
            ..Spec::new(scope, key)
        };
        let Reservation::Reserved(id) = h.index().reserve(&spec.new_entry()).expect("reserve")
        else {
            panic!("{key} reserved twice");
        };
        h.index()
            .commit(&id, &blob_info(i as u64, 10))
            .expect("commit");
    }
    // A reservation is invisible even though its key matches exactly.
    h.index()
        .reserve(&Spec::new("refs/heads/main", "in-progress").new_entry())
        .expect("reserve");

    // (scopes, keys, version, expected (matched key, scope, exact) or None for a miss)
    type Want = Option<(&'static str, &'static str, bool)>;
    let cases: &[(&[&str], &[&str], &str, Want)] = &[
        (
            MAIN,
            &["linux-deps-abc"],
            "v1",
            Some(("Linux-Deps-ABC", "refs/heads/main", true)),
        ),
        (
            MAIN,
            &["npm-linux-"],
            "v1",
            Some(("npm-linux-2", "refs/heads/main", false)),
        ),
        (MAIN, &["k"], "v1", Some(("k", "refs/heads/main", true))),
        (
            MAIN,
            &["nope", "rk-a-", "rk-"],
            "v1",
            Some(("rk-a-2", "refs/heads/main", false)),
        ),
        (
            MAIN,
            &["nope", "rk-"],
            "v1",
            Some(("rk-b-9", "refs/heads/main", false)),
        ),
        (
            MAIN,
            &["nope", "exact-rk"],
            "v1",
            Some(("exact-rk", "refs/heads/main", false)),
        ),
        (
            MAIN,
            &["nope", "", "k-"],
            "v1",
            Some(("k-newer", "refs/heads/main", false)),
        ),
        (
            FEATURE,
            &["both"],
            "v1",
            Some(("both", "refs/heads/feature", true)),
        ),
        (
            FEATURE,
            &["linux-deps-abc"],
            "v1",
            Some(("Linux-Deps-ABC", "refs/heads/main", true)),
        ),
        // Scopes outrank keys: a restore-key hit in the feature scope beats an exact hit on main.
        (
            FEATURE,
            &["npm-linux-1", "feature-"],
            "v1",
            Some(("feature-only", "refs/heads/feature", false)),
        ),
        (MAIN, &["feature-only"], "v1", None),
        (MAIN, &["other-version"], "v1", None),
        (
            MAIN,
            &["other-version"],
            "v2",
            Some(("other-version", "refs/heads/main", true)),
        ),
        (MAIN, &["in-progress"], "v1", None),
        (MAIN, &["a%"], "v1", Some(("a%b", "refs/heads/main", false))),
        (MAIN, &["a_"], "v1", Some(("a_b", "refs/heads/main", false))),
        (
            MAIN,
            &["a\\"],
            "v1",
            Some(("a\\b", "refs/heads/main", false)),
        ),
        (MAIN, &["a-"], "v1", Some(("a-c", "refs/heads/main", false))),
        (
            MAIN,
            &["äpfel-"],
            "v1",
            Some(("ÄPFEL-1", "refs/heads/main", false)),
        ),
        (
            MAIN,
            &["x\u{10FFFF}"],
            "v1",
            Some(("x\u{10FFFF}z", "refs/heads/main", false)),
        ),
        (MAIN, &["zzz", "a%x"], "v1", None),
        (&[], &["k"], "v1", None),
    ];
    for (scopes, keys, version, want) in cases {
        let query = LookupQuery {
            repository: "octo/repo".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            keys: keys.iter().map(|s| s.to_string()).collect(),
            version: version.to_string(),
        };
        let got = h.index().lookup(&query).expect("lookup");
        let got = got.as_ref().map(|hit| {
            (
                hit.matched_key.as_str(),
                hit.entry.scope.as_str(),
                hit.exact,
            )
        });
        assert_eq!(got, *want, "{}: {scopes:?} {keys:?} {version}", h.backend);
    }
    let other_repo = LookupQuery {
        repository: "someone/else".into(),
        scopes: vec!["refs/heads/main".into()],
        keys: vec!["k".into()],
        version: "v1".into(),
    };
    assert_eq!(h.index().lookup(&other_repo).expect("lookup"), None);
}

fn hit_marks_entry_used(h: &Harness) {
    let saved = h.save(&Spec::new("refs/heads/main", "deps-1"), b"bytes");
    assert_eq!((saved.access_count, saved.last_accessed_at), (0, T0));
    let query = LookupQuery {
        repository: "octo/repo".into(),
        scopes: vec!["refs/heads/main".into()],
        keys: vec!["DEPS-1".into()],
        version: "v1".into(),
    };
    for n in 1..=3u64 {
        h.clock.advance(MINUTE);
        let hit = h.index().lookup(&query).expect("lookup").expect("hit");
        assert_eq!(
            (hit.entry.access_count, hit.entry.last_accessed_at),
            (n, T0 + n as i64 * MINUTE)
        );
    }
    let stored = h.index().get(&saved.id).expect("get").expect("exists");
    assert_eq!((stored.access_count, stored.created_at), (3, T0));
}

fn reserve_commit_abort(h: &Harness) {
    let idx = h.index();
    let spec = Spec::new("refs/heads/main", "Build-Cache");
    let Reservation::Reserved(id) = idx.reserve(&spec.new_entry()).expect("reserve") else {
        panic!("first reservation refused");
    };
    let upper = Spec::new("refs/heads/main", "BUILD-CACHE");
    let cases = [
        (Spec::new("refs/heads/main", "Build-Cache"), false),
        (upper, false),
        (Spec::new("refs/heads/other", "Build-Cache"), true),
        (
            Spec {
                version: "v2",
                ..Spec::new("refs/heads/main", "Build-Cache")
            },
            true,
        ),
        (
            Spec {
                repository: "o/r2",
                ..Spec::new("refs/heads/main", "Build-Cache")
            },
            true,
        ),
    ];
    for (other, distinct) in &cases {
        let got = idx.reserve(&other.new_entry()).expect("reserve");
        assert_eq!(
            matches!(got, Reservation::Reserved(_)),
            *distinct,
            "{other:?}"
        );
    }
    h.clock.advance(MINUTE);
    let entry = idx.commit(&id, &blob_info(7, 1234)).expect("commit");
    assert_eq!(entry.blob_digest, Some(blob_info(7, 0).digest));
    assert_eq!((entry.size_bytes, entry.created_at), (1234, T0 + MINUTE));
    assert_eq!(entry.paths, vec!["~/.npm", "!~/.npm/_logs"]);
    assert_eq!(entry.key, "Build-Cache");
    assert_eq!(
        idx.reserve(&spec.new_entry()).expect("reserve"),
        Reservation::AlreadyExists
    );
    // Committed entries are immutable: no second commit, no abort.
    assert!(matches!(
        idx.commit(&id, &blob_info(8, 1)),
        Err(IndexError::NotReserved { .. })
    ));
    assert!(!idx.abort(&id).expect("abort"));
    assert!(matches!(
        idx.commit("no-such-id", &blob_info(8, 1)),
        Err(IndexError::NotReserved { .. })
    ));

    let again = Spec::new("refs/heads/main", "aborted");
    let Reservation::Reserved(first) = idx.reserve(&again.new_entry()).expect("reserve") else {
        panic!("refused");
    };
    assert!(idx.abort(&first).expect("abort"));
    assert!(idx.get(&first).expect("get").is_none());
    assert!(matches!(
        idx.reserve(&again.new_entry()).expect("reserve"),
        Reservation::Reserved(_)
    ));
}

fn stale_reservation_is_taken_over(h: &Harness) {
    let idx = h.index();
    let spec = Spec::new("refs/heads/main", "slow");
    let Reservation::Reserved(old) = idx.reserve(&spec.new_entry()).expect("reserve") else {
        panic!("refused");
    };
    h.clock.advance(59 * MINUTE);
    assert_eq!(
        idx.reserve(&spec.new_entry()).expect("reserve"),
        Reservation::AlreadyExists
    );
    h.clock.advance(2 * MINUTE);
    let Reservation::Reserved(new) = idx.reserve(&spec.new_entry()).expect("reserve") else {
        panic!("stale reservation not taken over");
    };
    assert_ne!(old, new);
    // The original saver lost it; the new one owns it.
    assert!(matches!(
        idx.commit(&old, &blob_info(1, 1)),
        Err(IndexError::NotReserved { .. })
    ));
    assert!(!idx.abort(&old).expect("abort"));
    idx.commit(&new, &blob_info(2, 2)).expect("commit");
    // A committed entry never goes stale.
    h.clock.advance(10 * 24 * 60 * MINUTE);
    assert_eq!(
        idx.reserve(&spec.new_entry()).expect("reserve"),
        Reservation::AlreadyExists
    );
}

fn list_filters_and_sorts(h: &Harness) {
    let rows = [
        ("refs/heads/main", "npm-a", 300u64),
        ("refs/heads/main", "NPM-b", 100),
        ("refs/heads/dev", "npm-c", 200),
        ("refs/heads/main", "cargo-a", 50),
        ("refs/heads/main", "npm%", 10),
    ];
    for (i, (scope, key, size)) in rows.iter().enumerate() {
        h.clock.set(T0 + i as i64 * MINUTE);
        let Reservation::Reserved(id) = h
            .index()
            .reserve(&Spec::new(scope, key).new_entry())
            .expect("reserve")
        else {
            panic!("refused");
        };
        h.index()
            .commit(&id, &blob_info(i as u64, *size))
            .expect("commit");
    }
    // Touch cargo-a so it is the most recently used.
    h.clock.set(T0 + 100 * MINUTE);
    h.index()
        .lookup(&LookupQuery {
            repository: "octo/repo".into(),
            scopes: vec!["refs/heads/main".into()],
            keys: vec!["cargo-a".into()],
            version: "v1".into(),
        })
        .expect("lookup")
        .expect("hit");
    h.index()
        .reserve(&Spec::new("refs/heads/main", "npm-reserved").new_entry())
        .expect("reserve");

    let f =
        |key_prefix: Option<&str>, scope: Option<&str>, sort, limit, include_reserved| ListFilter {
            key_prefix: key_prefix.map(str::to_string),
            scope: scope.map(str::to_string),
            repository: None,
            sort,
            limit,
            include_reserved,
        };
    let cases: Vec<(ListFilter, Vec<&str>)> = vec![
        (
            f(None, None, ListSort::Created, None, false),
            vec!["npm%", "cargo-a", "npm-c", "NPM-b", "npm-a"],
        ),
        (
            f(Some("npm-"), None, ListSort::Created, None, false),
            vec!["npm-c", "NPM-b", "npm-a"],
        ),
        (
            f(Some("NPM"), None, ListSort::Size, None, false),
            vec!["npm-a", "npm-c", "NPM-b", "npm%"],
        ),
        (
            f(Some("npm%"), None, ListSort::Created, None, false),
            vec!["npm%"],
        ),
        (
            f(
                None,
                Some("refs/heads/main"),
                ListSort::LastUsed,
                Some(2),
                false,
            ),
            vec!["cargo-a", "npm%"],
        ),
        (
            f(
                Some("npm-"),
                Some("refs/heads/main"),
                ListSort::Created,
                None,
                true,
            ),
            vec!["npm-reserved", "NPM-b", "npm-a"],
        ),
        (
            ListFilter {
                repository: Some("x/y".into()),
                ..ListFilter::default()
            },
            vec![],
        ),
    ];
    for (filter, want) in cases {
        let got: Vec<String> = h
            .index()
            .list(&filter)
            .expect("list")
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(got, want, "{}: {filter:?}", h.backend);
    }
}

fn get_find_delete(h: &Harness) {
    let a = h.save(&Spec::new("refs/heads/main", "Shared-Key"), b"one");
    h.clock.advance(MINUTE);
    let b = h.save(&Spec::new("refs/heads/dev", "shared-key"), b"two");
    let c = h.save(
        &Spec {
            version: "v9",
            ..Spec::new("refs/heads/main", "SHARED-KEY")
        },
        b"three",
    );
    let ids = |entries: Vec<runner::store::index::Entry>| {
        entries.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    let idx = h.index();
    assert_eq!(
        ids(idx.find_by_key(None, None, "shared-KEY").expect("find")),
        vec![c.id.clone(), b.id.clone(), a.id.clone()]
    );
    assert_eq!(
        ids(idx
            .find_by_key(None, Some("refs/heads/dev"), "shared-key")
            .expect("find")),
        vec![b.id.clone()]
    );
    assert_eq!(
        ids(idx
            .find_by_key(Some("x/y"), None, "shared-key")
            .expect("find")),
        Vec::<String>::new()
    );
    assert_eq!(idx.get(&a.id).expect("get"), Some(a.clone()));
    assert_eq!(h.store.delete(&a.id).expect("delete"), Some(a.clone()));
    assert_eq!(idx.get(&a.id).expect("get"), None);
    assert_eq!(h.store.delete(&a.id).expect("delete again"), None);
    // Its blob went with it; the others' stayed.
    let digest = |e: &runner::store::index::Entry| e.blob_digest.clone().expect("digest");
    assert!(!h.store.blobs().contains(&digest(&a)).expect("contains"));
    assert!(h.store.blobs().contains(&digest(&b)).expect("contains"));
}

fn stats_summarise_events(h: &Harness) {
    h.save(&Spec::new("refs/heads/main", "a"), b"12345");
    h.save(
        &Spec {
            repository: "o/other",
            ..Spec::new("refs/heads/main", "b")
        },
        b"123",
    );
    h.index()
        .reserve(&Spec::new("refs/heads/main", "c").new_entry())
        .expect("reserve");
    let ev = |kind, key: &str, matched: Option<&str>, bytes| NewEvent {
        repository: "octo/repo".into(),
        scope: "refs/heads/main".into(),
        kind,
        key: key.into(),
        matched_key: matched.map(str::to_string),
        bytes,
        duration_ms: Some(3),
    };
    // An old event outside the window.
    h.index()
        .record_event(&ev(EventKind::Miss, "old", None, None))
        .expect("record");
    h.clock.advance(MINUTE);
    let events = [
        ev(EventKind::HitExact, "a", Some("a"), Some(5)),
        ev(EventKind::HitExact, "a", Some("a"), Some(5)),
        ev(EventKind::HitPartial, "a-2", Some("a"), Some(5)),
        ev(EventKind::HitPartial, "z-2", Some("z-1"), Some(7)),
        ev(EventKind::Miss, "q", None, None),
        ev(EventKind::Save, "q", None, Some(100)),
        ev(EventKind::Skip, "a", None, None),
    ];
    for e in &events {
        h.index().record_event(e).expect("record");
    }
    let stats = h.index().stats(T0 + MINUTE, None).expect("stats");
    assert_eq!(
        (stats.entries, stats.total_size_bytes, stats.reserved),
        (2, 8, 1)
    );
    let counts: Vec<u64> = [
        EventKind::HitExact,
        EventKind::HitPartial,
        EventKind::Miss,
        EventKind::Save,
        EventKind::Skip,
    ]
    .into_iter()
    .map(|k| stats.count(k))
    .collect();
    assert_eq!(counts, vec![2, 2, 1, 1, 1]);
    assert!((stats.hit_rate - 0.8).abs() < 1e-9, "{}", stats.hit_rate);
    assert_eq!((stats.bytes_restored, stats.bytes_saved), (22, 100));
    let top: Vec<(String, u64)> = stats
        .top_keys
        .iter()
        .map(|k| (k.key.clone(), k.hits))
        .collect();
    assert_eq!(top, vec![("a".to_string(), 3), ("z-1".to_string(), 1)]);
    let all = h.index().stats(T0, None).expect("stats");
    assert_eq!(all.count(EventKind::Miss), 2);
    let other = h.index().stats(T0, Some("o/other")).expect("stats");
    assert_eq!(
        (
            other.entries,
            other.total_size_bytes,
            other.count(EventKind::HitExact)
        ),
        (1, 3, 0)
    );
    assert_eq!(other.hit_rate, 0.0);
    // The recorded events read back as written.
    let back = h.index().events(T0 + MINUTE).expect("events");
    assert_eq!(
        back.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        events.to_vec()
    );
}

fn keys_the_database_cannot_store_are_refused(h: &Harness) {
    for key in ["", "a\0b"] {
        let got = h
            .index()
            .reserve(&Spec::new("refs/heads/main", key).new_entry());
        assert!(
            matches!(got, Err(IndexError::InvalidKey { .. })),
            "{key:?}: {got:?}"
        );
    }
}

fn reopening_is_a_no_op_migration(h: &Harness) {
    let saved = h.save(&Spec::new("refs/heads/main", "survives"), b"x");
    let again = h.reopen();
    assert_eq!(again.index().get(&saved.id).expect("get"), Some(saved));
    assert_eq!(
        again.index().describe_schema().expect("describe"),
        h.index().describe_schema().expect("describe")
    );
}
