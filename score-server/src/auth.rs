//! Bearer-token authentication: `--auth-token-file PATH` holds the tokens
//! (one per line; blank lines and `#` comments ignored), re-read on SIGHUP.
//! Scoring and model routes need `Authorization: Bearer <token>`; health
//! and readiness stay open (probes carry no secrets), and `/metrics` too
//! unless `--metrics-auth`.
//!
//! Tokens are compared as SHA-256 digests, every token and every byte
//! without an early exit, so the time taken says nothing of how close a
//! guess was. Tokens are never logged: only how many were loaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use sha2::{Digest, Sha256};

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// It could not be read.
    #[error("cannot read the auth token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// It holds no token: nobody could use the server.
    #[error("the auth token file {} holds no token (one per line)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The accepted tokens.
#[derive(Debug)]
pub struct Auth {
    path: PathBuf,
    /// Swapped whole on reload; read on every request without a lock or
    /// a shared reference count: no global lock on the request path.
    digests: ArcSwap<Vec<[u8; 32]>>,
}

impl Auth {
    /// Loads the tokens of `path`.
    pub fn load(path: &Path) -> Result<Auth, AuthError> {
        let digests = read(path)?;
        Ok(Auth { path: path.to_path_buf(), digests: ArcSwap::from_pointee(digests) })
    }

    /// Re-reads the file. On failure the tokens in use stay (a broken edit
    /// must not lock everyone out, nor let everyone in).
    pub fn reload(&self) -> Result<usize, AuthError> {
        let digests = read(&self.path)?;
        let n = digests.len();
        self.digests.store(Arc::new(digests));
        Ok(n)
    }

    /// Tokens loaded.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    /// Whether no token is loaded (never true: loading refuses that).
    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// Whether an `Authorization` header value carries an accepted token.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        let Some(token) = authorization.and_then(bearer) else { return false };
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut matched = 0u8;
        for known in self.current().iter() {
            matched |= ct_eq(known, &digest);
        }
        matched == 1
    }

    fn current(&self) -> arc_swap::Guard<Arc<Vec<[u8; 32]>>> {
        self.digests.load()
    }
}

/// Largest token file read: thousands of tokens take a few hundred KiB.
const MAX_FILE: u64 = 4 << 20;

fn read(path: &Path) -> Result<Vec<[u8; 32]>, AuthError> {
    let failed = |source| AuthError::Read { path: path.to_path_buf(), source };
    // Only a regular file of a sane size: opening a FIFO put in its place
    // blocks until something writes to it, and /dev/zero never ends.
    let meta = std::fs::metadata(path).map_err(failed)?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file of at most {} MiB", MAX_FILE >> 20),
        )));
    }
    let text = std::fs::read_to_string(path).map_err(failed)?;
    let digests: Vec<[u8; 32]> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|t| Sha256::digest(t.as_bytes()).into())
        .collect();
    if digests.is_empty() {
        return Err(AuthError::Empty { path: path.to_path_buf() });
    }
    Ok(digests)
}

/// The token of `Bearer <token>` (the scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

/// 1 when equal, 0 otherwise, in time independent of the contents.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> u8 {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    u8::from(diff == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_reloaded() {
        let path = std::env::temp_dir().join(format!("tokens-{}", std::process::id()));
        std::fs::write(&path, "# team a\nalpha\n\n  beta  \n").expect("write");
        let auth = Auth::load(&path).expect("load");
        assert_eq!(auth.len(), 2);
        assert!(auth.allows(Some(b"Bearer alpha")));
        assert!(auth.allows(Some(b"bearer beta")));
        assert!(!auth.allows(Some(b"Bearer alph")));
        assert!(!auth.allows(Some(b"Basic alpha")));
        assert!(!auth.allows(Some(b"Bearer ")));
        assert!(!auth.allows(None));
        std::fs::write(&path, "gamma\n").expect("write");
        assert_eq!(auth.reload().expect("reload"), 1);
        assert!(!auth.allows(Some(b"Bearer alpha")));
        assert!(auth.allows(Some(b"Bearer gamma")));
        // A broken edit keeps the tokens in use.
        std::fs::write(&path, "\n# nothing\n").expect("write");
        assert!(auth.reload().is_err());
        assert!(auth.allows(Some(b"Bearer gamma")));
        std::fs::remove_file(&path).expect("clean");
    }
}
