//! The Secrets Manager API over the embedded store: the behaviour that depends on
//! persistence (values, labels, deletion, tags, listing, reopening, regions, concurrency,
//! rotation and its lock).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use keyroll_core::api::*;
use keyroll_core::engine::{RotateOptions, RotationError, Silent, rotate};
use keyroll_core::ids::SecretRef;
use keyroll_core::model::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, Tag};
use keyroll_core::ports::{RotationStore, SecretsApi};
use keyroll_core::service::{Backend, Change, CommitError};
use keyroll_targets::none::NoneTarget;
use secrecy::ExposeSecret;

#[test]
fn create_put_get_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock);
    let svc = store.region("us-east-1");
    rt().block_on(async {
        let c = create(&svc, "app/db", "v1").await;
        assert!(
            c.arn
                .starts_with("arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-")
        );
        let v1 = c.version_id.unwrap();
        assert_eq!(
            get_string(&svc, "app/db", AWSCURRENT).await.as_deref(),
            Some("v1")
        );

        let t2 = token(2);
        let p = put(&svc, "app/db", &t2, "v2").await;
        assert_eq!(p.version_stages, vec![AWSCURRENT.to_string()]);
        assert_eq!(
            get_string(&svc, &c.arn, AWSCURRENT).await.as_deref(),
            Some("v2")
        );
        assert_eq!(
            get_string(&svc, &c.arn, AWSPREVIOUS).await.as_deref(),
            Some("v1")
        );

        // Same token, same value: a no-op; same token, other value: an error.
        put(&svc, "app/db", &t2, "v2").await;
        let e = svc
            .put_secret_value(PutSecretValueRequest {
                secret_id: "app/db".into(),
                client_request_token: Some(t2.clone()),
                secret_string: s("other"),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "ResourceExistsException");

        // A pending version leaves AWSCURRENT alone; moving AWSCURRENT moves AWSPREVIOUS.
        let t3 = token(3);
        svc.put_secret_value(PutSecretValueRequest {
            secret_id: "app/db".into(),
            client_request_token: Some(t3.clone()),
            secret_string: s("v3"),
            version_stages: Some(vec![AWSPENDING.into()]),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            get_string(&svc, "app/db", AWSCURRENT).await.as_deref(),
            Some("v2")
        );
        assert_eq!(
            get_string(&svc, "app/db", AWSPENDING).await.as_deref(),
            Some("v3")
        );
        svc.update_secret_version_stage(UpdateSecretVersionStageRequest {
            secret_id: "app/db".into(),
            version_stage: AWSCURRENT.into(),
            move_to_version_id: Some(t3.clone()),
            remove_from_version_id: Some(t2.clone()),
        })
        .await
        .unwrap();
        let st = stages(&svc, "app/db").await;
        assert!(st[&t3].contains(&AWSCURRENT.to_string()));
        assert_eq!(st[&t2], vec![AWSPREVIOUS.to_string()]);
        assert!(!st.contains_key(&v1), "v1 lost its labels and is hidden");
        // A deprecated version's value is still readable by id.
        let old = get(&svc, "app/db", None, Some(&v1)).await.unwrap();
        assert_eq!(old.secret_string.unwrap().expose_secret(), "v1");

        let ids = svc
            .list_secret_version_ids(ListSecretVersionIdsRequest {
                secret_id: "app/db".into(),
                include_deprecated: Some(true),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ids.versions.len(), 3);

        let dup = svc
            .create_secret(CreateSecretRequest {
                name: "app/db".into(),
                client_request_token: Some(token(9)),
                secret_string: s("x"),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(dup.aws_type(), "ResourceExistsException");
    });
}

#[test]
fn binary_values_keep_their_kind_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let svc = open(dir.path(), &clock).region("us-east-1");
    let bytes: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    rt().block_on(async {
        create(&svc, "bin", "text first").await;
        put_binary(&svc, "bin", &token(1), &bytes).await;
        let r = get(&svc, "bin", None, None).await.unwrap();
        assert!(r.secret_string.is_none());
        assert_eq!(r.secret_binary.unwrap().expose_secret(), bytes.as_slice());
        let prev = get(&svc, "bin", Some(AWSPREVIOUS), None).await.unwrap();
        assert_eq!(prev.secret_string.unwrap().expose_secret(), "text first");
    });
    let svc = open(dir.path(), &clock).region("us-east-1");
    let r = rt().block_on(get(&svc, "bin", None, None)).unwrap();
    assert_eq!(r.secret_binary.unwrap().expose_secret(), bytes.as_slice());
}

#[test]
fn everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let (arn, before) = {
        let svc = open(dir.path(), &clock).region("eu-west-1");
        rt().block_on(async {
            let c = svc
                .create_secret(CreateSecretRequest {
                    name: "prod/api".into(),
                    client_request_token: Some(token(1)),
                    description: Some("the API key".into()),
                    secret_string: s("k1"),
                    tags: Some(vec![Tag::new("team", "core")]),
                    ..Default::default()
                })
                .await
                .unwrap();
            put(&svc, "prod/api", &token(2), "k2").await;
            svc.configure_rotation("prod/api", Some("keyroll".into()), None)
                .await
                .unwrap();
            let d = svc
                .describe_secret(SecretIdRequest {
                    secret_id: c.arn.clone(),
                })
                .await;
            (c.arn, serde_json::to_value(d.unwrap()).unwrap())
        })
    };
    let svc = open(dir.path(), &clock).region("eu-west-1");
    rt().block_on(async {
        let d = svc
            .describe_secret(SecretIdRequest {
                secret_id: arn.clone(),
            })
            .await
            .unwrap();
        assert_eq!(serde_json::to_value(&d).unwrap(), before);
        assert_eq!(d.description.as_deref(), Some("the API key"));
        assert_eq!(d.tag("team"), Some("core"));
        assert_eq!(
            get_string(&svc, "prod/api", AWSCURRENT).await.as_deref(),
            Some("k2")
        );
        assert_eq!(
            get_string(&svc, &arn, AWSPREVIOUS).await.as_deref(),
            Some("k1")
        );
        // Partial ARN (no suffix) works too.
        let partial = arn[..arn.len() - 7].to_string();
        assert_eq!(
            get_string(&svc, &partial, AWSCURRENT).await.as_deref(),
            Some("k2")
        );
    });
}

#[test]
fn delete_restore_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock);
    let svc = store.region("us-east-1");
    rt().block_on(async {
        let c = create(&svc, "tmp/one", "x").await;
        let d = svc
            .delete_secret(DeleteSecretRequest {
                secret_id: "tmp/one".into(),
                recovery_window_in_days: Some(7),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(d.deletion_date, T0.plus_days(7));
        let e = get(&svc, "tmp/one", None, None).await.unwrap_err();
        assert_eq!(e.aws_type(), "InvalidRequestException");
        svc.restore_secret(SecretIdRequest {
            secret_id: "tmp/one".into(),
        })
        .await
        .unwrap();
        assert_eq!(
            get_string(&svc, "tmp/one", AWSCURRENT).await.as_deref(),
            Some("x")
        );

        // Past the recovery window the secret is purged on the next look-up, for good.
        svc.delete_secret(DeleteSecretRequest {
            secret_id: c.arn.clone(),
            recovery_window_in_days: Some(7),
            ..Default::default()
        })
        .await
        .unwrap();
        clock.advance_days(8);
        assert!(
            get(&svc, "tmp/one", None, None)
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert_eq!(svc.purge_expired().unwrap(), 0);

        // The name is free again; the new secret has a new ARN and no old value.
        let again = create(&svc, "tmp/one", "y").await;
        assert_ne!(again.arn, c.arn);
        assert_eq!(get_string(&svc, "tmp/one", AWSPREVIOUS).await, None);

        svc.delete_secret(DeleteSecretRequest {
            secret_id: "tmp/one".into(),
            force_delete_without_recovery: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(
            get(&svc, "tmp/one", None, None)
                .await
                .unwrap_err()
                .is_not_found()
        );
    });
    // Nothing of it is left in the file.
    let svc = open(dir.path(), &clock).region("us-east-1");
    let mut n = 0;
    svc.backend().for_each(&mut |_| n += 1).unwrap();
    assert_eq!(n, 0);
    assert!(store.regions().unwrap().is_empty());
}

#[test]
fn tags_and_listing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let svc = open(dir.path(), &clock).region("us-east-1");
    rt().block_on(async {
        for i in 0..5 {
            clock.advance_millis(1000);
            create(&svc, &format!("svc/{i}"), "v").await;
        }
        svc.tag_resource(TagResourceRequest {
            secret_id: "svc/3".into(),
            tags: vec![Tag::new("env", "prod"), Tag::new("owner", "ops")],
        })
        .await
        .unwrap();
        svc.untag_resource(UntagResourceRequest {
            secret_id: "svc/3".into(),
            tag_keys: vec!["owner".into()],
        })
        .await
        .unwrap();
        let d = svc
            .describe_secret(SecretIdRequest {
                secret_id: "svc/3".into(),
            })
            .await
            .unwrap();
        assert_eq!(d.tags.unwrap(), vec![Tag::new("env", "prod")]);

        let page1 = svc
            .list_secrets(ListSecretsRequest {
                max_results: Some(3),
                ..Default::default()
            })
            .await
            .unwrap();
        let names: Vec<_> = page1.secret_list.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["svc/0", "svc/1", "svc/2"]);
        let page2 = svc
            .list_secrets(ListSecretsRequest {
                max_results: Some(3),
                next_token: page1.next_token,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page2.secret_list.len(), 2);
        assert!(page2.next_token.is_none());
        let tagged = svc
            .list_secrets(ListSecretsRequest {
                filters: Some(vec![Filter {
                    key: "tag-key".into(),
                    values: vec!["env".into()],
                }]),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(tagged.secret_list.len(), 1);
        assert_eq!(tagged.secret_list[0].name, "svc/3");
    });
}

#[test]
fn regions_are_separate_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock);
    let east = store.region("us-east-1");
    let west = store.region("us-west-2");
    rt().block_on(async {
        let e = create(&east, "shared/name", "east").await;
        let w = create(&west, "shared/name", "west").await;
        assert_ne!(e.arn, w.arn);
        assert_eq!(
            get_string(&east, "shared/name", AWSCURRENT)
                .await
                .as_deref(),
            Some("east")
        );
        assert_eq!(
            get_string(&west, "shared/name", AWSCURRENT)
                .await
                .as_deref(),
            Some("west")
        );
        // One region's ARN is not found in the other.
        assert!(
            get(&west, &e.arn, None, None)
                .await
                .unwrap_err()
                .is_not_found()
        );
        create(&west, "west/only", "w").await;
        let listed = east
            .list_secrets(ListSecretsRequest::default())
            .await
            .unwrap();
        assert_eq!(listed.secret_list.len(), 1);
    });
    assert_eq!(store.regions().unwrap(), ["us-east-1", "us-west-2"]);
}

#[test]
fn backend_contract_conflicts_and_name_taken() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock);
    let svc = store.region("us-east-1");
    rt().block_on(create(&svc, "cas", "v"));
    let b = svc.backend();
    let rec = b.find(&SecretRef::parse("cas").unwrap()).unwrap().unwrap();
    assert_eq!(rec.revision, 1);

    // A stale revision is a conflict; the right one commits.
    let mut stale = rec.clone();
    stale.revision = 5;
    let r = b.commit(Change::Update {
        record: &stale,
        value: None,
        removed_versions: &[],
    });
    assert!(matches!(r, Err(CommitError::Conflict)));
    let mut next = rec.clone();
    next.revision = 2;
    next.description = Some("d".into());
    b.commit(Change::Update {
        record: &next,
        value: None,
        removed_versions: &[],
    })
    .unwrap();
    let again = b.commit(Change::Update {
        record: &next,
        value: None,
        removed_versions: &[],
    });
    assert!(matches!(again, Err(CommitError::Conflict)));

    // Inserting a taken name fails, even under another ARN.
    let mut dup = rec.clone();
    dup.arn = format!("{}X", rec.arn);
    let r = b.commit(Change::Insert {
        record: &dup,
        value: None,
    });
    assert!(matches!(r, Err(CommitError::NameTaken)));

    // Updating a purged secret is a conflict.
    b.commit(Change::Purge { arn: &rec.arn }).unwrap();
    let mut gone = next.clone();
    gone.revision = 3;
    let r = b.commit(Change::Update {
        record: &gone,
        value: None,
        removed_versions: &[],
    });
    assert!(matches!(r, Err(CommitError::Conflict)));
    assert!(b.find(&SecretRef::parse("cas").unwrap()).unwrap().is_none());
}

#[test]
fn concurrent_writers_lose_no_update() {
    const THREADS: usize = 4;
    const PUTS: usize = 15;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock);
    rt().block_on(create(&store.region("us-east-1"), "hot", "v0"));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let svc = store.region("us-east-1");
                let rt = rt();
                let mut mine = Vec::new();
                for i in 0..PUTS {
                    let tok = token((t * 1000 + i) as u64);
                    let v = format!("t{t}-{i}");
                    rt.block_on(async {
                        svc.tag_resource(TagResourceRequest {
                            secret_id: "hot".into(),
                            tags: vec![Tag::new(format!("t{t}"), i.to_string())],
                        })
                        .await
                        .unwrap();
                        put(&svc, "hot", &tok, &v).await;
                    });
                    mine.push((tok, v));
                }
                mine
            })
        })
        .collect();
    let written: Vec<(String, String)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();

    let svc = open(dir.path(), &clock).region("us-east-1");
    let b = svc.backend();
    let rec = b.find(&SecretRef::parse("hot").unwrap()).unwrap().unwrap();
    // One commit for the creation, then one per tag and per put.
    assert_eq!(rec.revision as usize, 1 + 2 * THREADS * PUTS);
    assert_eq!(rec.versions.len(), 1 + THREADS * PUTS);
    for (tok, v) in &written {
        let got = b.read_value(&rec, tok).unwrap();
        assert_eq!(got.expose_str(), Some(v.as_str()));
    }
    for t in 0..THREADS {
        let tag = rec.tags.iter().find(|x| x.key == format!("t{t}")).unwrap();
        assert_eq!(tag.value, (PUTS - 1).to_string());
    }
    assert_eq!(
        rec.versions
            .iter()
            .filter(|v| v.has_stage(AWSCURRENT))
            .count(),
        1
    );
    assert_eq!(
        rec.versions
            .iter()
            .filter(|v| v.has_stage(AWSPREVIOUS))
            .count(),
        1
    );
}

#[test]
fn rotation_with_the_none_target() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock);
    let svc = store.region("us-east-1");
    rt().block_on(async {
        let c = svc
            .create_secret(CreateSecretRequest {
                name: "db/app".into(),
                client_request_token: Some(token(1)),
                secret_string: s(r#"{"username":"app","password":"old-password"}"#),
                ..Default::default()
            })
            .await
            .unwrap();
        svc.configure_rotation(&c.arn, Some("keyroll".into()), None)
            .await
            .unwrap();
        let report = rotate(
            &svc,
            &NoneTarget::new(),
            "db/app",
            &RotateOptions::default(),
            &Silent,
        )
        .await
        .unwrap();
        let st = stages(&svc, "db/app").await;
        assert_eq!(st[&report.version_id], vec![AWSCURRENT.to_string()]);
        assert_eq!(st[&token(1)], vec![AWSPREVIOUS.to_string()]);
        assert!(st.values().all(|s| !s.contains(&AWSPENDING.to_string())));
        let now = get_string(&svc, "db/app", AWSCURRENT).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&now).unwrap();
        assert_eq!(v["username"], "app");
        assert_ne!(v["password"], "old-password");
        let d = svc
            .describe_secret(SecretIdRequest { secret_id: c.arn })
            .await
            .unwrap();
        assert_eq!(d.last_rotated_date, Some(T0));
    });
}

#[test]
fn rotation_locks_conflict_across_handles_and_release_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let a = open(dir.path(), &clock).region("us-east-1");
    // A second, independent handle: as another process would open it.
    let b = open(dir.path(), &clock).region("us-east-1");
    let arn = rt().block_on(create(&a, "locked", "v")).arn;
    rt().block_on(a.configure_rotation(&arn, Some("keyroll".into()), None))
        .unwrap();

    let held = a.try_lock_rotation(&arn).unwrap().expect("free at first");
    assert!(a.try_lock_rotation(&arn).unwrap().is_none(), "same handle");
    assert!(b.try_lock_rotation(&arn).unwrap().is_none(), "other handle");
    let e = rt()
        .block_on(rotate(
            &b,
            &NoneTarget::new(),
            &arn,
            &RotateOptions::default(),
            &Silent,
        ))
        .unwrap_err();
    assert!(matches!(e, RotationError::AlreadyRunning { .. }), "{e}");
    drop(held);
    rt().block_on(rotate(
        &b,
        &NoneTarget::new(),
        &arn,
        &RotateOptions::default(),
        &Silent,
    ))
    .unwrap();
    // `a` sees `b`'s rotation at once.
    let st = rt().block_on(stages(&a, &arn));
    assert_eq!(st.len(), 2);
}

#[test]
fn handles_on_one_directory_see_each_others_commits() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let a = open(dir.path(), &clock).region("us-east-1");
    let b = open(dir.path(), &clock).region("us-east-1");
    rt().block_on(async {
        let c = create(&a, "shared", "1").await;
        assert_eq!(
            get_string(&b, "shared", AWSCURRENT).await.as_deref(),
            Some("1")
        );
        put(&b, "shared", &token(2), "2").await;
        assert_eq!(
            get_string(&a, &c.arn, AWSCURRENT).await.as_deref(),
            Some("2")
        );
        a.delete_secret(DeleteSecretRequest {
            secret_id: "shared".into(),
            force_delete_without_recovery: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(
            get(&b, "shared", None, None)
                .await
                .unwrap_err()
                .is_not_found()
        );
        let again = create(&b, "shared", "3").await;
        assert_eq!(
            get_string(&a, "shared", AWSCURRENT).await.as_deref(),
            Some("3")
        );
        assert_ne!(again.arn, c.arn);
    });
    let names: BTreeSet<String> = {
        let mut n = BTreeSet::new();
        a.backend()
            .for_each(&mut |r| {
                n.insert(r.name.clone());
            })
            .unwrap();
        n
    };
    assert_eq!(names, BTreeSet::from(["shared".to_string()]));
}

#[test]
fn bulk_insert_seeds_many_secrets_in_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock);
    let svc = store.region("us-east-1");
    let ns = svc.backend().namespace().clone();
    let batch: Vec<_> = (0..500)
        .map(|i| {
            let name = format!("seed/{i}");
            let mut rec = keyroll_core::model::SecretRecord::new(
                ns.secret_arn(&name, &keyroll_core::ids::random_arn_suffix()),
                name,
                T0,
            );
            let vid = token(i);
            rec.put_version(&vid, None, T0, |_| false).unwrap();
            rec.revision = 1;
            (
                rec,
                Some((vid, keyroll_core::SecretValue::string(format!("value-{i}")))),
            )
        })
        .collect();
    svc.backend().bulk_insert(&batch).unwrap();
    assert!(matches!(
        svc.backend().bulk_insert(&batch[..1]),
        Err(CommitError::NameTaken)
    ));
    let other = Arc::new(open(dir.path(), &clock)).region("us-east-1");
    rt().block_on(async {
        assert_eq!(
            get_string(&other, "seed/499", AWSCURRENT).await.as_deref(),
            Some("value-499")
        );
        put(&other, "seed/7", &token(10_007), "changed").await;
        assert_eq!(
            get_string(&svc, "seed/7", AWSCURRENT).await.as_deref(),
            Some("changed")
        );
    });
}

#[test]
fn a_handle_behind_pruned_purge_markers_reloads_everything() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let a = open(dir.path(), &clock).region("us-east-1");
    let b = open(dir.path(), &clock).region("us-east-1");
    rt().block_on(async {
        create(&a, "gone", "x").await;
        create(&a, "kept", "y").await;
        assert_eq!(
            get_string(&b, "gone", AWSCURRENT).await.as_deref(),
            Some("x")
        );
        a.delete_secret(DeleteSecretRequest {
            secret_id: "gone".into(),
            force_delete_without_recovery: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    });
    // Prune the purge marker as if 10,000 newer purges had happened since `b` last looked.
    {
        let c =
            rusqlite::Connection::open(dir.path().join(keyroll_store::embedded::DB_FILE)).unwrap();
        c.execute_batch(
            "DELETE FROM purged; \
             UPDATE meta SET value = (SELECT value FROM meta WHERE key = 'seq') \
             WHERE key = 'purged_floor';",
        )
        .unwrap();
    }
    rt().block_on(async {
        assert!(
            get(&b, "gone", None, None)
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert_eq!(
            get_string(&b, "kept", AWSCURRENT).await.as_deref(),
            Some("y")
        );
    });
}
