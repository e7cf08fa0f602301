//! A private temporary directory for one test or tool run, removed on drop (also when the
//! test panics), so nothing is left in the shared /tmp.

use std::path::{Path, PathBuf};

/// A directory `<tmp>/<prefix>-<pid>`, created empty and removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates it; a directory of that name left by an earlier process with the same pid is
    /// removed first.
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
