//! Why the embedded store could not be opened (or could not answer a store-level question).
//! Every message names the problem and the fix, and none ever contains key material or a
//! secret value.

use std::path::PathBuf;

/// Errors of [`super::EmbeddedStore::open`] and the store-level calls.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot use the data directory {path}: {source}; create it (mode 0700) and make it \
         writable by this user, or point --data-dir at another directory"
    )]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "KEYROLL_MASTER_KEY is not a valid master key ({reason}); it must be the base64 of 32 \
         random bytes (e.g. the output of `openssl rand -base64 32`) or 64 hex characters"
    )]
    MalformedEnvKey { reason: &'static str },

    #[error(
        "the master key is not valid ({reason}); it must be the base64 of 32 random bytes \
         (e.g. the output of `openssl rand -base64 32`) or 64 hex characters"
    )]
    MalformedKey { reason: &'static str },

    #[error(
        "the master key file {path} is not valid ({reason}); it must hold the base64 of 32 \
         random bytes (or 64 hex characters) on one line: restore the original file, or set \
         KEYROLL_MASTER_KEY to the original key"
    )]
    MalformedKeyFile { path: PathBuf, reason: &'static str },

    #[error(
        "cannot read or create the master key file {path}: {source}; check its permissions, \
         or set KEYROLL_MASTER_KEY instead"
    )]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "the data directory {data_dir} holds a keyroll database but its master key is missing \
         (no KEYROLL_MASTER_KEY and no {key_file}): set KEYROLL_MASTER_KEY to the key the \
         directory was created with, restore {key_file}, or point --data-dir at another \
         directory"
    )]
    MissingMasterKey {
        data_dir: PathBuf,
        key_file: PathBuf,
    },

    #[error(
        "the master key does not match the one the data directory {data_dir} was created \
         with: set KEYROLL_MASTER_KEY to the original key (or restore its master.key), or \
         point --data-dir at another directory"
    )]
    WrongMasterKey { data_dir: PathBuf },

    #[error(
        "the database {path} has schema version {found}, newer than this keyroll understands \
         (up to {supported}): it was written by a newer keyroll; upgrade keyroll, or point \
         --data-dir at another directory"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error(
        "{path} is not a keyroll database or is damaged ({detail}); point --data-dir at \
         another directory, or restore the directory from a backup"
    )]
    NotAKeyrollDatabase { path: PathBuf, detail: String },

    #[error(
        "SQLite failed on {path}: {source}; if another keyroll process holds the database for \
         long, retry once it is done; otherwise check the disk and the file's permissions"
    )]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error(
        "the operating system's random number generator failed ({0}); keyroll cannot create \
         keys without it"
    )]
    Random(String),
}
