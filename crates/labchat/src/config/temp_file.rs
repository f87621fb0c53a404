//! Test files (config files, seed files) for the tests of the config module and of its children.

/// A file with this body in the temporary directory, removed on drop.
pub struct TempFile(std::path::PathBuf);

impl TempFile {
    pub fn new(body: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("labchat-config-test-{}-{n}", std::process::id()));
        std::fs::write(&path, body).unwrap();
        Self(path)
    }

    /// The path, as a command-line argument.
    pub fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
