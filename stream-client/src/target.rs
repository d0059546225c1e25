//! Where an output goes: a file written beside its final name and renamed
//! into place only when complete, or stdout. Shared by the plain formats
//! (`files`) and Parquet (`parquet_io`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::file_error::FileError;

/// Where the output of `path` is written until it is complete.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    PathBuf::from(tmp)
}

/// Where an output goes: a file, written as `PATH.partial` and renamed
/// into place only when complete, or stdout (`-`).
pub enum Target {
    /// A file.
    File {
        /// Where it ends up.
        path: PathBuf,
        /// Where it is written until complete.
        tmp: PathBuf,
    },
    /// The process's standard output.
    Stdout,
}

impl Target {
    /// `-` is stdout; anything else a file.
    pub fn of(path: &Path) -> Target {
        if path.as_os_str() == "-" {
            return Target::Stdout;
        }
        Target::File { path: path.to_path_buf(), tmp: partial_path(path) }
    }

    /// The name to show: the path, or `-`.
    pub fn shown(&self) -> &Path {
        match self {
            Target::File { path, .. } => path,
            Target::Stdout => Path::new("-"),
        }
    }

    /// Opens the output for writing (the partial file, created now).
    pub fn sink(&self) -> Result<Box<dyn Write + Send>, FileError> {
        Ok(match self {
            Target::File { tmp, .. } => {
                let file = File::create(tmp).map_err(FileError::io(tmp))?;
                Box::new(BufWriter::with_capacity(1 << 20, file))
            }
            Target::Stdout => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout())),
        })
    }

    /// Syncs the written file and renames it into place (after the sink
    /// was flushed and dropped).
    pub fn commit(&self) -> Result<(), FileError> {
        if let Target::File { path, tmp } = self {
            File::open(tmp).and_then(|f| f.sync_all()).map_err(FileError::io(tmp))?;
            std::fs::rename(tmp, path).map_err(FileError::io(path))?;
        }
        Ok(())
    }

    /// Removes the partial file, if any.
    pub fn abandon(&self) {
        if let Target::File { tmp, .. } = self {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
