//! The cache version: which archives a lookup may restore.

use sha2::{Digest, Sha256};

use crate::archive::Compression;

/// Mixed into every version so a breaking change of the entry format can start afresh.
const VERSION_SALT: &str = "1.0";

/// The toolkit's `getCacheVersion`: lowercase hex sha256 of the `path` lines as written, the
/// compression method, `windows-only` (on Windows without `enableCrossOsArchive`) and the salt,
/// joined by `|`.
pub fn cache_version(
    paths: &[String],
    compression: Compression,
    windows: bool,
    enable_cross_os_archive: bool,
) -> String {
    let mut components: Vec<&str> = paths.iter().map(String::as_str).collect();
    components.push(compression.method());
    if windows && !enable_cross_os_archive {
        components.push("windows-only");
    }
    components.push(VERSION_SALT);
    hex::encode(Sha256::digest(components.join("|").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolkit_test_vectors() {
        // Computed with `getCacheVersion` of `@actions/cache` 4.x under Node (platform forced to
        // win32 for the Windows rows); the first row is also the toolkit's own test vector.
        let rows: &[(&[&str], Compression, bool, bool, &str)] = &[
            (
                &["~/.npm"],
                Compression::Zstd,
                false,
                false,
                "c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2",
            ),
            (
                &["~/.npm"],
                Compression::Gzip,
                false,
                false,
                "9e0ba804245d8292e3d31c4651caa1d2c2e10e81739c3a6224daf431cd079309",
            ),
            (
                &["node_modules", "!node_modules/.cache"],
                Compression::Zstd,
                false,
                false,
                "070a7affa4bb59cf073cda78dbf348d40d0f99bb533c410da4bbc66083ed4253",
            ),
            (
                &["~/.cargo/registry", "target"],
                Compression::Zstd,
                false,
                false,
                "2658cd8adbe1865cd88db264072ab2681c3fb72aab71f6ad5262c447339e56e4",
            ),
            (
                &["a b", "c|d"],
                Compression::Gzip,
                false,
                false,
                "4a39750e2a530930dbecb5bb139c601d4ff2725922d0e1f8e0818b91cb74073a",
            ),
            (
                &["~/.npm"],
                Compression::Zstd,
                true,
                false,
                "87a143c2687b970ac142274f8402e52dd505af933d11e344dc1908521d3d68f7",
            ),
            (
                &["~/.npm"],
                Compression::Zstd,
                true,
                true,
                "c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2",
            ),
            (
                &["~/.npm"],
                Compression::Zstd,
                false,
                true,
                "c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2",
            ),
        ];
        for (paths, compression, windows, cross_os, expected) in rows {
            let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
            assert_eq!(
                cache_version(&paths, *compression, *windows, *cross_os),
                *expected,
                "{paths:?} {compression:?} windows={windows} cross_os={cross_os}"
            );
        }
    }
}
