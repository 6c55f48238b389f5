//! The SQLite file: connections, pragmas, the versioned schema and its migrations.
//!
//! `PRAGMA user_version` is the number of migrations applied; `PRAGMA application_id` marks
//! the file as keyroll's. Migrations run in order, each batch inside the same `BEGIN
//! IMMEDIATE` transaction that checks the version, so concurrent openers apply them once.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::crypto::{self, Key};
use super::error::StoreError;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "keyroll.db";
/// `PRAGMA application_id` of a keyroll database (ASCII `KROL`).
pub const APPLICATION_ID: i32 = 0x4b52_4f4c;
/// How long a statement waits for another process's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

struct Migration {
    description: &'static str,
    sql: &'static str,
}

/// Every schema change, in order; `user_version` = how many of these ran. Never edit a
/// migration once released: append a new one (and a test opening a database made at the
/// previous version).
const MIGRATIONS: &[Migration] = &[Migration {
    description: "secrets, sealed values, purge markers and counters",
    sql: "
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY NOT NULL,
            value ANY NOT NULL
        ) STRICT;
        INSERT INTO meta (key, value) VALUES ('seq', 0), ('purged_floor', 0);

        CREATE TABLE secrets (
            arn         TEXT PRIMARY KEY NOT NULL,
            region      TEXT NOT NULL,
            name        TEXT NOT NULL,
            revision    INTEGER NOT NULL,
            seq         INTEGER NOT NULL,
            record      TEXT NOT NULL,
            wrapped_key BLOB NOT NULL,
            UNIQUE (region, name)
        ) STRICT;
        CREATE INDEX secrets_by_seq ON secrets (seq);

        CREATE TABLE secret_values (
            arn        TEXT NOT NULL,
            version_id TEXT NOT NULL,
            seq        INTEGER NOT NULL,
            sealed     BLOB NOT NULL,
            PRIMARY KEY (arn, version_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX secret_values_by_seq ON secret_values (seq);

        CREATE TABLE purged (
            arn TEXT PRIMARY KEY NOT NULL,
            seq INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX purged_by_seq ON purged (seq);
    ",
}];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What an existing file holds, learnt without changing it.
pub enum DbState {
    /// No database file yet.
    Absent,
    /// A keyroll database (possibly empty or half-created) without a key check yet.
    Fresh,
    /// A keyroll database and its key check.
    Existing { key_check: Vec<u8> },
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotAKeyrollDatabase {
            path: path.to_path_buf(),
            detail: "SQLite says it is not a database".into(),
        },
        _ => StoreError::Sqlite {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// A `file:` URI for `path` (`?`, `#`, `%` and everything unusual percent-encoded).
fn file_uri(path: &Path, query: &str) -> String {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push('?');
    uri.push_str(query);
    uri
}

fn wal_path(db: &Path) -> std::path::PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

/// Reads the file's state without writing anything: with no `-wal` file the database is
/// opened `immutable` (no lock, `-wal` or `-shm` file is created); with one, read-only (which
/// may refresh the `-shm` index, never the database or the log).
pub fn inspect(db: &Path) -> Result<DbState, StoreError> {
    if !db.exists() {
        return Ok(DbState::Absent);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if !wal_path(db).exists() {
        let quiet = Connection::open_with_flags(file_uri(db, "mode=ro&immutable=1"), flags)
            .map_err(sqlite(db))
            .and_then(|c| read_state(&c, db));
        // A SQLite error may mean another process opened the file in between: ask again the
        // ordinary way. Any other answer stands.
        if !matches!(quiet, Err(StoreError::Sqlite { .. })) {
            return quiet;
        }
    }
    let conn = Connection::open_with_flags(file_uri(db, "mode=ro"), flags).map_err(sqlite(db))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite(db))?;
    read_state(&conn, db)
}

fn check_header(conn: &Connection, db: &Path) -> Result<i64, StoreError> {
    let app: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(sqlite(db))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sqlite(db))?;
    if app != 0 && app != APPLICATION_ID {
        return Err(StoreError::NotAKeyrollDatabase {
            path: db.to_path_buf(),
            detail: format!("it belongs to another application (application_id {app:#x})"),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: db.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(sqlite(db))?;
        if tables > 0 {
            return Err(StoreError::NotAKeyrollDatabase {
                path: db.to_path_buf(),
                detail: "it holds tables but no keyroll schema version".into(),
            });
        }
    } else if app != APPLICATION_ID {
        return Err(StoreError::NotAKeyrollDatabase {
            path: db.to_path_buf(),
            detail: "it has a schema version but no keyroll application id".into(),
        });
    }
    Ok(version)
}

fn read_key_check(conn: &Connection, db: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    conn.query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
        r.get(0)
    })
    .optional()
    .map_err(sqlite(db))
}

fn read_state(conn: &Connection, db: &Path) -> Result<DbState, StoreError> {
    if check_header(conn, db)? == 0 {
        return Ok(DbState::Fresh);
    }
    Ok(match read_key_check(conn, db)? {
        Some(key_check) => DbState::Existing { key_check },
        None => DbState::Fresh,
    })
}

/// Creates the database file with mode 0600 before SQLite does (SQLite would use 0644 less
/// the umask, and gives `-wal` and `-shm` the database file's mode), and restricts an existing
/// database, `-wal` and `-shm` to 0600.
fn private_files(db: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::DataDir { path, source }
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(db)
        .map_err(fail(db))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        match std::fs::metadata(&p) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                // Not this user's file (e.g. a store shared through its group): warn, as for
                // the data directory, rather than refuse to open it.
                if let Err(e) = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                {
                    tracing::warn!(
                        file = %p.display(),
                        mode = format!("{:o}", m.permissions().mode() & 0o777),
                        error = %e,
                        "this store file is accessible to other users and could not be \
                         restricted; restrict it with chmod 600"
                    );
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(&p)(e)),
        }
    }
    Ok(())
}

/// Opens a read-write connection with keyroll's settings: WAL, `synchronous=FULL` (the log
/// is fsynced at every commit), a busy timeout, no trusted schema.
pub fn open_rw(db: &Path) -> Result<Connection, StoreError> {
    private_files(db)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags).map_err(sqlite(db))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite(db))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sqlite(db))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotAKeyrollDatabase {
            path: db.to_path_buf(),
            detail: format!("SQLite refused write-ahead logging (journal mode {mode})"),
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite(db))?;
    conn.pragma_update(None, "trusted_schema", "OFF")
        .map_err(sqlite(db))?;
    Ok(conn)
}

/// Brings the schema up to date and checks (or, in a new database, stores) the key check,
/// in one transaction: a wrong key rolls everything back.
pub fn migrate(
    conn: &mut Connection,
    db: &Path,
    data_dir: &Path,
    master: &Key,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite(db))?;
    let from = check_header(&tx, db)?;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tracing::info!(db = %db.display(), version = i + 1, "migrating: {}", m.description);
        tx.execute_batch(m.sql).map_err(sqlite(db))?;
    }
    if from < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sqlite(db))?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(sqlite(db))?;
    }
    match read_key_check(&tx, db)? {
        Some(check) => {
            let ok = crypto::verify_key_check(master, &check).map_err(|e| {
                StoreError::NotAKeyrollDatabase {
                    path: db.to_path_buf(),
                    detail: format!("its key check is damaged: {e}"),
                }
            })?;
            if !ok {
                return Err(StoreError::WrongMasterKey {
                    data_dir: data_dir.to_path_buf(),
                });
            }
        }
        None => {
            let check = crypto::key_check(master).map_err(|e| StoreError::Random(e.to_string()))?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('key_check', ?1)",
                [check],
            )
            .map_err(sqlite(db))?;
        }
    }
    tx.commit().map_err(sqlite(db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_wal_and_shm_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("keyroll.db");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let conn = open_rw(&db).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let p = dir.path().join(format!("keyroll.db{suffix}"));
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        drop(conn);
        // An existing database readable by others is restricted at the next open.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _conn = open_rw(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
    }

    #[test]
    fn uris_escape_special_characters() {
        assert_eq!(
            file_uri(Path::new("/tmp/a b/x?y#z%.db"), "mode=ro"),
            "file:/tmp/a%20b/x%3Fy%23z%25.db?mode=ro"
        );
    }

    #[test]
    fn migrations_are_numbered_by_position() {
        assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as i64);
        assert!(MIGRATIONS.iter().all(|m| !m.sql.trim().is_empty()));
    }
}
