//! The reference material that is not part of the repository: the real
//! UNIS server's JSON Schemas and a transcript of its answers, kept in
//! `../shared/unis/` beside the repository (CI checks it out there).

use std::path::{Path, PathBuf};

/// `BLIPP_SHARED_DIR` if set, else the first `shared/` with a `unis/`
/// inside, looking beside the repository and then beside each directory
/// above it (a git worktree sits one level deeper than the main checkout).
pub fn shared_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BLIPP_SHARED_DIR") {
        let dir = PathBuf::from(dir);
        return dir.join("unis").is_dir().then_some(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    repo.ancestors()
        .skip(1)
        .map(|a| a.join("shared"))
        .find(|d| d.join("unis").join("schemas-20151104").is_dir())
}

/// The directory of the server's schemas.
pub fn schema_dir() -> Option<PathBuf> {
    shared_dir().map(|d| d.join("unis").join("schemas-20151104"))
}

/// The recorded exchanges with the real server.
pub fn transcript_path() -> Option<PathBuf> {
    shared_dir()
        .map(|d| d.join("unis").join("transcript-real-server.json"))
        .filter(|p| p.is_file())
}

/// What a test that needs this material and finds none is missing.
pub const MISSING: &str = "../shared/unis beside the repository (the real server's schemas and transcript; or set BLIPP_SHARED_DIR)";
