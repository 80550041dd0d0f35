//! actions/cache semantics: key validation, version, restore order, outputs, state, post-step
//! save, scopes, eviction policy and metrics events. Speaks neither SQL nor tar directly.
