//! Diesel's view of `schema.sql` (kept in step with it by the schema test).

diesel::table! {
    cache_entries (id) {
        id -> Text,
        repository -> Text,
        scope -> Text,
        key -> Text,
        key_lower -> Text,
        version -> Text,
        paths -> Text,
        compression -> Text,
        blob_digest -> Nullable<Text>,
        size_bytes -> BigInt,
        state -> Text,
        created_at -> BigInt,
        last_accessed_at -> BigInt,
        access_count -> BigInt,
        created_by_run -> Nullable<Text>,
        roots -> Nullable<Text>,
        broken_at -> Nullable<BigInt>,
        owner -> Nullable<Text>,
    }
}

diesel::table! {
    cache_events (id) {
        id -> Text,
        at -> BigInt,
        repository -> Text,
        scope -> Text,
        kind -> Text,
        key -> Text,
        matched_key -> Nullable<Text>,
        bytes -> Nullable<BigInt>,
        duration_ms -> Nullable<BigInt>,
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    cache_audit (id) {
        id -> Text,
        at -> BigInt,
        actor -> Text,
        request -> Text,
        entry_id -> Text,
        repository -> Text,
        scope -> Text,
        key -> Text,
        version -> Text,
        size_bytes -> BigInt,
    }
}

diesel::table! {
    run_numbers (repository, workflow) {
        repository -> Text,
        workflow -> Text,
        last_number -> BigInt,
    }
}

/// Column names per table, as diesel knows them; the schema test compares them with the live
/// database.
pub fn diesel_columns() -> Vec<(&'static str, Vec<&'static str>)> {
    use diesel::Column;
    macro_rules! names {
        ($table:ident: $($col:ident),*) => {
            vec![$( $table::$col::NAME ),*]
        };
    }
    vec![
        (
            "cache_entries",
            names!(cache_entries: id, repository, scope, key, key_lower, version, paths,
                compression, blob_digest, size_bytes, state, created_at, last_accessed_at,
                access_count, created_by_run, roots, broken_at, owner),
        ),
        (
            "cache_events",
            names!(cache_events: id, at, repository, scope, kind, key, matched_key, bytes,
                duration_ms, reason),
        ),
        (
            "cache_audit",
            names!(cache_audit: id, at, actor, request, entry_id, repository, scope, key,
                version, size_bytes),
        ),
        (
            "run_numbers",
            names!(run_numbers: repository, workflow, last_number),
        ),
    ]
}
