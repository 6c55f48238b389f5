//! Opening a data directory: master key sources and formats, the key file, a wrong key
//! (clear error, nothing changed on disk), schema versions and foreign files.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use common::*;
use keyroll_core::model::AWSCURRENT;
use keyroll_store::embedded::{
    DB_FILE, EmbeddedStore, Env, KEY_FILE_NAME, MASTER_KEY_ENV, MasterKeySource, OpenOptions,
    SCHEMA_VERSION, StoreError,
};

fn auto(dir: &Path, env: Env) -> OpenOptions {
    OpenOptions::new(dir).clock(Arc::new(clock())).env(env)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn put_one(store: &EmbeddedStore, value: &str) {
    rt().block_on(create(&store.region("us-east-1"), "k", value));
}

fn read_one(store: &EmbeddedStore) -> Option<String> {
    rt().block_on(get_string(&store.region("us-east-1"), "k", AWSCURRENT))
}

#[test]
fn first_use_creates_a_private_data_dir_and_key_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("nested/data");
    let store = EmbeddedStore::open(auto(&dir, Env::empty())).unwrap();
    assert_eq!(store.data_dir(), dir);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("locks")), 0o700);
    let key_file = dir.join(KEY_FILE_NAME);
    assert_eq!(mode(&key_file), 0o600);
    let text = std::fs::read_to_string(&key_file).unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap();
    assert_eq!(raw.len(), 32);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    put_one(&store, "kept");
    drop(store);

    // The key file is used again; the same key given as KEYROLL_MASTER_KEY works too.
    let again = EmbeddedStore::open(auto(&dir, Env::empty())).unwrap();
    assert_eq!(read_one(&again).as_deref(), Some("kept"));
    drop(again);
    let via_env = EmbeddedStore::open(auto(&dir, Env::from_pairs([(MASTER_KEY_ENV, text)])));
    assert_eq!(read_one(&via_env.unwrap()).as_deref(), Some("kept"));
}

#[test]
fn master_key_from_the_environment_in_base64_and_hex() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = hex::decode(KEY_HEX).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let store = EmbeddedStore::open(auto(dir.path(), Env::from_pairs([(MASTER_KEY_ENV, &b64)])));
    put_one(&store.unwrap(), "env");
    assert!(
        !dir.path().join(KEY_FILE_NAME).exists(),
        "no key file when the env has the key"
    );
    for text in [
        KEY_HEX.to_string(),
        KEY_HEX.to_uppercase(),
        format!(" {b64}\n"),
    ] {
        let store =
            EmbeddedStore::open(auto(dir.path(), Env::from_pairs([(MASTER_KEY_ENV, text)])));
        assert_eq!(read_one(&store.unwrap()).as_deref(), Some("env"));
    }
    // The explicit source and the key file source agree with it.
    let explicit = EmbeddedStore::open(
        OpenOptions::new(dir.path())
            .env(Env::empty())
            .master_key(key(&b64)),
    );
    assert_eq!(read_one(&explicit.unwrap()).as_deref(), Some("env"));
    let file = dir.path().join("elsewhere.key");
    std::fs::write(&file, KEY_HEX).unwrap();
    let from_file = EmbeddedStore::open(
        OpenOptions::new(dir.path())
            .env(Env::empty())
            .master_key(MasterKeySource::File(file)),
    );
    assert_eq!(read_one(&from_file.unwrap()).as_deref(), Some("env"));
}

#[test]
fn a_malformed_environment_key_is_a_clear_error_and_creates_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    for bad in ["short", &KEY_HEX[..63], "!!!!not base64!!!!", "AAAA", ""] {
        let e =
            EmbeddedStore::open(auto(&dir, Env::from_pairs([(MASTER_KEY_ENV, bad)]))).unwrap_err();
        assert!(matches!(e, StoreError::MalformedEnvKey { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("KEYROLL_MASTER_KEY"), "{msg}");
        assert!(msg.contains("base64 of 32"), "{msg}");
        assert!(msg.contains("64 hex"), "{msg}");
        if bad.len() > 3 {
            assert!(!msg.contains(bad), "the error quotes the key: {msg}");
        }
        assert!(!dir.join(DB_FILE).exists());
        assert!(!dir.join(KEY_FILE_NAME).exists());
    }
}

#[test]
fn a_malformed_key_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(KEY_FILE_NAME), "definitely not a key\n").unwrap();
    let e = EmbeddedStore::open(auto(dir.path(), Env::empty())).unwrap_err();
    assert!(matches!(e, StoreError::MalformedKeyFile { .. }), "{e:?}");
    assert!(e.to_string().contains("master.key"), "{e}");
    assert!(!e.to_string().contains("definitely"), "{e}");
}

/// Names and bytes of every file in the directory.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    files(dir)
}

#[test]
fn a_wrong_master_key_fails_clearly_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(auto(dir.path(), Env::empty())).unwrap();
    put_one(&store, "precious");
    drop(store);
    let before = snapshot(dir.path());
    assert!(before.keys().any(|p| p.ends_with(DB_FILE)));

    let wrong = [
        auto(
            dir.path(),
            Env::from_pairs([(MASTER_KEY_ENV, OTHER_KEY_HEX)]),
        ),
        OpenOptions::new(dir.path())
            .env(Env::empty())
            .master_key(key(OTHER_KEY_HEX)),
    ];
    for opts in wrong {
        let e = EmbeddedStore::open(opts).unwrap_err();
        assert!(matches!(e, StoreError::WrongMasterKey { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("does not match"), "{msg}");
        assert!(msg.contains("KEYROLL_MASTER_KEY"), "{msg}");
        assert!(msg.contains("--data-dir"), "{msg}");
        assert!(
            snapshot(dir.path()) == before,
            "the failed open changed files"
        );
    }
    // The right key still works afterwards.
    let store = EmbeddedStore::open(auto(dir.path(), Env::empty())).unwrap();
    assert_eq!(read_one(&store).as_deref(), Some("precious"));
}

#[test]
fn a_wrong_master_key_leaves_a_live_database_and_its_log_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let live = open(dir.path(), &clock);
    put_one(&live, "live");
    let data_files = |d: &Path| {
        let mut f = snapshot(d);
        f.retain(|p, _| !p.to_string_lossy().ends_with("-shm"));
        f
    };
    let before = data_files(dir.path());
    assert!(before.keys().any(|p| p.to_string_lossy().ends_with("-wal")));
    let e = EmbeddedStore::open(
        OpenOptions::new(dir.path())
            .env(Env::empty())
            .master_key(key(OTHER_KEY_HEX)),
    )
    .unwrap_err();
    assert!(matches!(e, StoreError::WrongMasterKey { .. }), "{e:?}");
    assert!(
        data_files(dir.path()) == before,
        "the database or its log changed"
    );
    assert_eq!(read_one(&live).as_deref(), Some("live"));
}

#[test]
fn a_database_without_its_key_file_is_not_given_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    put_one(
        &EmbeddedStore::open(auto(dir.path(), Env::empty())).unwrap(),
        "v",
    );
    let key_file = dir.path().join(KEY_FILE_NAME);
    let saved = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let e = EmbeddedStore::open(auto(dir.path(), Env::empty())).unwrap_err();
    assert!(matches!(e, StoreError::MissingMasterKey { .. }), "{e:?}");
    assert!(e.to_string().contains("KEYROLL_MASTER_KEY"), "{e}");
    assert!(
        !key_file.exists(),
        "a fresh key would lock the data out for good"
    );
    std::fs::write(&key_file, saved).unwrap();
    assert_eq!(
        read_one(&EmbeddedStore::open(auto(dir.path(), Env::empty())).unwrap()),
        Some("v".into())
    );
}

#[test]
fn a_database_from_a_newer_keyroll_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    put_one(&open(dir.path(), &clock), "v");
    let db = dir.path().join(DB_FILE);
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let before = snapshot(dir.path());
    let e = EmbeddedStore::open(options(dir.path(), &clock)).unwrap_err();
    match &e {
        StoreError::SchemaTooNew {
            found, supported, ..
        } => {
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("newer keyroll"), "{e}");
    assert!(e.to_string().contains("upgrade keyroll"), "{e}");
    assert!(snapshot(dir.path()) == before);
}

#[test]
fn an_empty_database_file_is_migrated_from_version_zero() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    {
        // A database a crash left before its first migration committed.
        let c = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
    }
    let store = open(dir.path(), &clock);
    put_one(&store, "v");
    drop(store);
    let c = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
}

#[test]
fn foreign_files_are_not_taken_for_a_keyroll_database() {
    let clock = clock();
    let garbage = tempfile::tempdir().unwrap();
    std::fs::write(garbage.path().join(DB_FILE), vec![0x42; 8192]).unwrap();
    let e = EmbeddedStore::open(options(garbage.path(), &clock)).unwrap_err();
    assert!(matches!(e, StoreError::NotAKeyrollDatabase { .. }), "{e:?}");
    assert!(e.to_string().contains("--data-dir"), "{e}");

    let other_app = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(other_app.path().join(DB_FILE)).unwrap();
        c.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
            .unwrap();
    }
    let before = snapshot(other_app.path());
    let e = EmbeddedStore::open(options(other_app.path(), &clock)).unwrap_err();
    assert!(matches!(e, StoreError::NotAKeyrollDatabase { .. }), "{e:?}");
    assert!(snapshot(other_app.path()) == before);
}

#[test]
fn a_data_dir_that_is_a_file_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = EmbeddedStore::open(options(&file, &clock())).unwrap_err();
    assert!(matches!(e, StoreError::DataDir { .. }), "{e:?}");
    assert!(e.to_string().contains("--data-dir"), "{e}");
}
