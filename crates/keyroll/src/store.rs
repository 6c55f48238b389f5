//! Opening the store a command works on.

use keyroll_store::embedded::{EmbeddedStore, MasterKeySource, OpenOptions};
use std::path::Path;

/// Which store `keyroll secret` and `keyroll rotate` work on (`--store`, `KEYROLL_STORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded encrypted store in DATA_DIR.
    Embedded,
    /// AWS Secrets Manager.
    Aws,
}

/// Opens one region of the embedded store in `data_dir`. Read-only commands refuse to create
/// a data directory that does not exist yet.
pub fn open_embedded(
    data_dir: &Path,
    region: &str,
    account: &str,
    read_only: bool,
) -> anyhow::Result<keyroll_store::embedded::RegionStore> {
    if read_only && !data_dir.exists() {
        anyhow::bail!(crate::NoDataDir(data_dir.display().to_string()));
    }
    let store = EmbeddedStore::open(
        OpenOptions::new(data_dir)
            .master_key(MasterKeySource::Auto)
            .account(account),
    )?;
    Ok(store.region(region))
}
