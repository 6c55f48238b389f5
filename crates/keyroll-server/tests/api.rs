//! Every operation through the real AWS SDK for Rust against `keyroll serve` in-process.

mod common;

use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{
    Filter, FilterNameStringType, ReplicaRegionType, RotationRulesType, SortOrderType, Tag,
};
use common::*;

const KEYROLL_FN: &str = "arn:aws:lambda:us-east-1:000000000000:function:keyroll";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_put_update_describe() {
    let t = start_server().await;
    let c = t.client();
    let created = c
        .create_secret()
        .name("prod/app/db")
        .description("the app database")
        .secret_string(r#"{"username":"app","password":"one"}"#)
        .tags(Tag::builder().key("env").value("prod").build())
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_string();
    assert!(arn.starts_with("arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/app/db-"));
    assert_eq!(
        arn.len(),
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/app/db-".len() + 6
    );
    let v1 = created.version_id().unwrap().to_string();

    // By name, full ARN and partial ARN.
    for id in [
        "prod/app/db",
        arn.as_str(),
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/app/db",
    ] {
        let g = c.get_secret_value().secret_id(id).send().await.unwrap();
        assert_eq!(
            g.secret_string(),
            Some(r#"{"username":"app","password":"one"}"#)
        );
        assert_eq!(g.version_stages(), ["AWSCURRENT"]);
        assert!(g.created_date().is_some());
    }

    // CreateSecret on an existing name: ResourceExists even with a new token.
    let e = c
        .create_secret()
        .name("prod/app/db")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "ResourceExistsException");

    let put = c
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("two")
        .send()
        .await
        .unwrap();
    let v2 = put.version_id().unwrap().to_string();
    assert_eq!(put.version_stages(), ["AWSCURRENT"]);
    let prev = c
        .get_secret_value()
        .secret_id(&arn)
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(prev.version_id(), Some(v1.as_str()));
    let by_id = c
        .get_secret_value()
        .secret_id(&arn)
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.secret_string(), Some("two"));

    let upd = c
        .update_secret()
        .secret_id(&arn)
        .description("new description")
        .secret_string("three")
        .send()
        .await
        .unwrap();
    assert!(upd.version_id().is_some());

    let d = c
        .describe_secret()
        .secret_id("prod/app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(d.description(), Some("new description"));
    assert_eq!(d.tags().len(), 1);
    let stages = d.version_ids_to_stages().unwrap();
    assert_eq!(
        stages.len(),
        2,
        "deprecated versions are hidden: {stages:?}"
    );
    assert!(d.rotation_enabled().is_none(), "unset fields are omitted");
    assert!(d.created_date().is_some());

    // SecretBinary is base64 on the wire and round-trips.
    let bin = vec![0u8, 159, 146, 150, 255];
    c.create_secret()
        .name("bin")
        .secret_binary(Blob::new(bin.clone()))
        .send()
        .await
        .unwrap();
    let g = c.get_secret_value().secret_id("bin").send().await.unwrap();
    assert_eq!(g.secret_binary().unwrap().as_ref(), bin.as_slice());
    assert!(g.secret_string().is_none());

    // Unknown secret: AWS's wording.
    let e = c
        .get_secret_value()
        .secret_id("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "ResourceNotFoundException");
    assert_eq!(
        err_message(&e),
        "Secrets Manager can't find the specified secret."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_are_epoch_seconds_and_absent_fields_omitted_on_the_wire() {
    let t = start_server().await;
    let (status, v) = raw(
        &t.url,
        &t.key,
        "secretsmanager.CreateSecret",
        r#"{"Name":"wire","SecretString":"v","ClientRequestToken":"00000000-0000-0000-0000-000000000001"}"#,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, d) = raw(
        &t.url,
        &t.key,
        "secretsmanager.DescribeSecret",
        r#"{"SecretId":"wire"}"#,
    )
    .await;
    let created = d["CreatedDate"].as_f64().unwrap();
    assert!(
        created > 1.6e9 && created < 1e10,
        "epoch seconds: {created}"
    );
    let o = d.as_object().unwrap();
    for absent in [
        "Description",
        "RotationEnabled",
        "DeletedDate",
        "Tags",
        "KmsKeyId",
    ] {
        assert!(!o.contains_key(absent), "{absent} must be omitted: {d}");
    }
    // A raw call without ClientRequestToken where one is needed.
    let (status, e) = raw(
        &t.url,
        &t.key,
        "secretsmanager.PutSecretValue",
        r#"{"SecretId":"wire","SecretString":"v2"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(e["__type"], "InvalidRequestException");
    // Unknown operations and unparseable bodies.
    let (status, e) = raw(&t.url, &t.key, "secretsmanager.Frobnicate", "{}").await;
    assert_eq!(
        (status, e["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );
    let (status, e) = raw(&t.url, &t.key, "secretsmanager.GetSecretValue", "{not json").await;
    assert_eq!(
        (status, e["__type"].as_str()),
        (400, Some("SerializationException"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_get_with_ids_filters_and_errors() {
    let t = start_server().await;
    let c = t.client();
    for (n, v) in [("app/a", "1"), ("app/b", "2"), ("other/c", "3")] {
        c.create_secret()
            .name(n)
            .secret_string(v)
            .send()
            .await
            .unwrap();
    }
    let r = c
        .batch_get_secret_value()
        .secret_id_list("app/a")
        .secret_id_list("missing")
        .send()
        .await
        .unwrap();
    assert_eq!(r.secret_values().len(), 1);
    assert_eq!(r.secret_values()[0].secret_string(), Some("1"));
    assert_eq!(r.errors().len(), 1);
    assert_eq!(r.errors()[0].secret_id(), Some("missing"));
    assert_eq!(
        r.errors()[0].error_code(),
        Some("ResourceNotFoundException")
    );

    let r = c
        .batch_get_secret_value()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values("app/")
                .build(),
        )
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.secret_values().len(), 1);
    let next = r.next_token().unwrap().to_string();
    let r = c
        .batch_get_secret_value()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values("app/")
                .build(),
        )
        .max_results(1)
        .next_token(next)
        .send()
        .await
        .unwrap();
    assert_eq!(r.secret_values()[0].name(), Some("app/b"));
    assert!(r.next_token().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_secrets_filters_sort_pagination_and_planned_deletion() {
    let t = start_server().await;
    let c = t.client();
    for (n, env, desc) in [
        ("prod/db", "prod", "database"),
        ("prod/api", "prod", "api key"),
        ("dev/db", "dev", "database"),
    ] {
        c.create_secret()
            .name(n)
            .description(desc)
            .secret_string("v")
            .tags(Tag::builder().key("env").value(env).build())
            .send()
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let names = |r: &aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput| {
        r.secret_list()
            .iter()
            .map(|s| s.name().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let f = |k: FilterNameStringType, v: &str| Filter::builder().key(k).values(v).build();
    let r = c
        .list_secrets()
        .filters(f(FilterNameStringType::Name, "prod/"))
        .send()
        .await
        .unwrap();
    assert_eq!(names(&r), ["prod/db", "prod/api"]);
    let r = c
        .list_secrets()
        .filters(f(FilterNameStringType::TagValue, "dev"))
        .send()
        .await
        .unwrap();
    assert_eq!(names(&r), ["dev/db"]);
    let r = c
        .list_secrets()
        .filters(f(FilterNameStringType::TagKey, "env"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.secret_list().len(), 3);
    let r = c
        .list_secrets()
        .filters(f(FilterNameStringType::Description, "data"))
        .send()
        .await
        .unwrap();
    assert_eq!(names(&r), ["prod/db", "dev/db"]);
    let r = c
        .list_secrets()
        .filters(f(FilterNameStringType::Name, "!prod"))
        .send()
        .await
        .unwrap();
    assert_eq!(names(&r), ["dev/db"]);
    let r = c
        .list_secrets()
        .filters(f(FilterNameStringType::All, "api"))
        .send()
        .await
        .unwrap();
    assert_eq!(names(&r), ["prod/api"]);
    let r = c
        .list_secrets()
        .sort_order(SortOrderType::Desc)
        .send()
        .await
        .unwrap();
    assert_eq!(names(&r), ["dev/db", "prod/api", "prod/db"]);
    let p1 = c.list_secrets().max_results(2).send().await.unwrap();
    assert_eq!(p1.secret_list().len(), 2);
    let p2 = c
        .list_secrets()
        .max_results(2)
        .next_token(p1.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(names(&p2), ["dev/db"]);
    assert!(p2.next_token().is_none());
    let e = c
        .list_secrets()
        .next_token("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidNextTokenException");

    c.delete_secret().secret_id("dev/db").send().await.unwrap();
    assert_eq!(
        c.list_secrets().send().await.unwrap().secret_list().len(),
        2
    );
    let r = c
        .list_secrets()
        .include_planned_deletion(true)
        .send()
        .await
        .unwrap();
    assert_eq!(r.secret_list().len(), 3);
    assert!(r.secret_list().iter().any(|s| s.deleted_date().is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_stages_and_versions_listing() {
    let t = start_server().await;
    let c = t.client();
    let v1 = c
        .create_secret()
        .name("s")
        .secret_string("1")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    let v2 = c
        .put_secret_value()
        .secret_id("s")
        .secret_string("2")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    // Moving an attached AWSCURRENT requires RemoveFromVersionId.
    let e = c
        .update_secret_version_stage()
        .secret_id("s")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&v2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidParameterException");
    c.update_secret_version_stage()
        .secret_id("s")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&v2)
        .remove_from_version_id(&v1)
        .send()
        .await
        .unwrap();
    let d = c.describe_secret().secret_id("s").send().await.unwrap();
    let m = d.version_ids_to_stages().unwrap();
    assert_eq!(m[&v1], ["AWSPREVIOUS"]);
    assert!(m[&v2].contains(&"AWSCURRENT".to_string()));
    // Three more puts deprecate v1.
    for i in 3..6 {
        c.put_secret_value()
            .secret_id("s")
            .secret_string(i.to_string())
            .send()
            .await
            .unwrap();
    }
    let l = c
        .list_secret_version_ids()
        .secret_id("s")
        .send()
        .await
        .unwrap();
    assert!(
        l.versions()
            .iter()
            .all(|v| v.version_id() != Some(v1.as_str()))
    );
    let l = c
        .list_secret_version_ids()
        .secret_id("s")
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    assert!(
        l.versions()
            .iter()
            .any(|v| v.version_id() == Some(v1.as_str()))
    );
    assert_eq!(l.versions().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_restore_force_and_name_reuse() {
    let t = start_server().await;
    let c = t.client();
    c.create_secret()
        .name("d")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    for bad in [6, 31] {
        let e = c
            .delete_secret()
            .secret_id("d")
            .recovery_window_in_days(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_code(&e), "InvalidParameterException");
    }
    let del = c.delete_secret().secret_id("d").send().await.unwrap();
    let when = del.deletion_date().unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (when - now - 30 * 86400).abs() < 120,
        "default window is 30 days"
    );
    // Reads and writes are refused; describe works; the name cannot be re-created.
    let e = c
        .get_secret_value()
        .secret_id("d")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequestException");
    assert!(err_message(&e).contains("marked for deletion"));
    let e = c
        .put_secret_value()
        .secret_id("d")
        .secret_string("w")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequestException");
    let d = c.describe_secret().secret_id("d").send().await.unwrap();
    assert!(d.deleted_date().is_some());
    let e = c
        .create_secret()
        .name("d")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequestException");
    c.restore_secret().secret_id("d").send().await.unwrap();
    assert_eq!(
        c.get_secret_value()
            .secret_id("d")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("v")
    );
    // Forced deletion: gone at once, name free again; on an absent secret it still succeeds.
    c.delete_secret()
        .secret_id("d")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    c.delete_secret()
        .secret_id("d")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let e = c.describe_secret().secret_id("d").send().await.unwrap_err();
    assert_eq!(err_code(&e), "ResourceNotFoundException");
    c.delete_secret()
        .secret_id("never-existed")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name("d")
        .secret_string("again")
        .send()
        .await
        .unwrap();
    let e = c
        .delete_secret()
        .secret_id("d")
        .force_delete_without_recovery(true)
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidParameterException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_random_password_and_resource_policies() {
    let t = start_server().await;
    let c = t.client();
    c.create_secret()
        .name("p")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    c.tag_resource()
        .secret_id("p")
        .tags(Tag::builder().key("team").value("core").build())
        .tags(Tag::builder().key("env").value("dev").build())
        .send()
        .await
        .unwrap();
    c.untag_resource()
        .secret_id("p")
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    let d = c.describe_secret().secret_id("p").send().await.unwrap();
    assert_eq!(d.tags().len(), 1);
    assert_eq!(d.tags()[0].key(), Some("team"));

    let pw = c
        .get_random_password()
        .password_length(40)
        .exclude_punctuation(true)
        .send()
        .await
        .unwrap();
    let pw = pw.random_password().unwrap();
    assert_eq!(pw.len(), 40);
    assert!(pw.chars().all(|ch| ch.is_ascii_alphanumeric()));
    let e = c
        .get_random_password()
        .password_length(0)
        .send()
        .await
        .unwrap_err();
    // botocore model: PasswordLengthType min 1, answered as a constraint violation.
    assert_eq!(err_code(&e), "ValidationException");

    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/rotation"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    let v = c
        .validate_resource_policy()
        .resource_policy(policy)
        .send()
        .await
        .unwrap();
    assert!(v.policy_validation_passed());
    c.put_resource_policy()
        .secret_id("p")
        .resource_policy(policy)
        .send()
        .await
        .unwrap();
    let g = c.get_resource_policy().secret_id("p").send().await.unwrap();
    assert_eq!(g.resource_policy(), Some(policy));
    let public = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*"}]}"#;
    let e = c
        .put_resource_policy()
        .secret_id("p")
        .resource_policy(public)
        .block_public_policy(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "PublicPolicyException");
    let v = c
        .validate_resource_policy()
        .resource_policy(public)
        .send()
        .await
        .unwrap();
    assert!(!v.policy_validation_passed());
    assert!(!v.validation_errors().is_empty());
    let e = c
        .put_resource_policy()
        .secret_id("p")
        .resource_policy("{bad")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "MalformedPolicyDocumentException");
    c.delete_resource_policy()
        .secret_id("p")
        .send()
        .await
        .unwrap();
    assert!(
        c.get_resource_policy()
            .secret_id("p")
            .send()
            .await
            .unwrap()
            .resource_policy()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_keeps_read_only_replicas_in_sync() {
    let t = start_server().await;
    let c = t.client();
    let eu = t.client_in("eu-west-1");
    let arn = c
        .create_secret()
        .name("rep")
        .secret_string("v1")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let r = c
        .replicate_secret_to_regions()
        .secret_id(&arn)
        .add_replica_regions(ReplicaRegionType::builder().region("eu-west-1").build())
        .send()
        .await
        .unwrap();
    assert_eq!(r.replication_status()[0].region(), Some("eu-west-1"));
    assert_eq!(
        r.replication_status()[0].status().map(|s| s.as_str()),
        Some("InSync")
    );
    let g = eu.get_secret_value().secret_id("rep").send().await.unwrap();
    assert_eq!(g.secret_string(), Some("v1"));
    assert!(
        g.arn()
            .unwrap()
            .starts_with("arn:aws:secretsmanager:eu-west-1:")
    );
    // Writes to the primary reach the replica; the replica refuses writes.
    c.put_secret_value()
        .secret_id(&arn)
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        eu.get_secret_value()
            .secret_id("rep")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("v2")
    );
    let e = eu
        .put_secret_value()
        .secret_id("rep")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    // AWS's code for a write on a replica (emulator suites' AWS-verified replication cases).
    assert_eq!(
        err_code(&e),
        "InvalidParameterException",
        "one code for the replica guard"
    );
    let e = eu
        .update_secret()
        .secret_id("rep")
        .description("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidParameterException");
    let d = eu.describe_secret().secret_id("rep").send().await.unwrap();
    assert_eq!(d.primary_region(), Some("us-east-1"));
    // ListSecrets' primary-region filter finds the primary (and, in eu-west-1, its replica).
    let pr = |c: &aws_sdk_secretsmanager::Client| {
        c.list_secrets()
            .filters(
                Filter::builder()
                    .key(FilterNameStringType::PrimaryRegion)
                    .values("us-east-1")
                    .build(),
            )
            .send()
    };
    let names: Vec<_> = pr(&c)
        .await
        .unwrap()
        .secret_list()
        .iter()
        .map(|s| s.name().unwrap().to_string())
        .collect();
    assert_eq!(names, ["rep"]);
    assert_eq!(pr(&eu).await.unwrap().secret_list().len(), 1);
    // Regions are separate namespaces: a secret in us-west-2 is not visible elsewhere.
    t.client_in("us-west-2")
        .create_secret()
        .name("only-west")
        .secret_string("w")
        .send()
        .await
        .unwrap();
    assert!(
        c.describe_secret()
            .secret_id("only-west")
            .send()
            .await
            .is_err()
    );
    // Deleting a primary with replicas is refused; removal deletes the replica.
    assert!(c.delete_secret().secret_id(&arn).send().await.is_err());
    let ap = t.client_in("ap-south-1");
    c.replicate_secret_to_regions()
        .secret_id(&arn)
        .add_replica_regions(ReplicaRegionType::builder().region("ap-south-1").build())
        .send()
        .await
        .unwrap();
    let r = c
        .remove_regions_from_replication()
        .secret_id(&arn)
        .remove_replica_regions("ap-south-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.replication_status().len(), 1);
    assert!(ap.describe_secret().secret_id("rep").send().await.is_err());
    // Promotion: the replica becomes standalone and writable.
    eu.stop_replication_to_replica()
        .secret_id("rep")
        .send()
        .await
        .unwrap();
    eu.put_secret_value()
        .secret_id("rep")
        .secret_string("mine")
        .send()
        .await
        .unwrap();
    let d = c.describe_secret().secret_id(&arn).send().await.unwrap();
    assert!(d.replication_status().is_empty());
    // A name taken in the target region fails that region only.
    let sa = t.client_in("sa-east-1");
    sa.create_secret()
        .name("rep")
        .secret_string("other")
        .send()
        .await
        .unwrap();
    let r = c
        .replicate_secret_to_regions()
        .secret_id(&arn)
        .add_replica_regions(ReplicaRegionType::builder().region("sa-east-1").build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.replication_status()[0].status().map(|s| s.as_str()),
        Some("Failed")
    );
    // Replicating to its own region is an error.
    let e = c
        .replicate_secret_to_regions()
        .secret_id(&arn)
        .add_replica_regions(ReplicaRegionType::builder().region("us-east-1").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidParameterException");
    // CreateSecret with AddReplicaRegions.
    let cr = c
        .create_secret()
        .name("born-replicated")
        .secret_string("x")
        .add_replica_regions(ReplicaRegionType::builder().region("eu-central-1").build())
        .send()
        .await
        .unwrap();
    assert_eq!(cr.replication_status().len(), 1);
    let g = t
        .client_in("eu-central-1")
        .get_secret_value()
        .secret_id("born-replicated")
        .send()
        .await
        .unwrap();
    assert_eq!(g.secret_string(), Some("x"));
}

async fn wait_rotated(
    c: &aws_sdk_secretsmanager::Client,
    id: &str,
) -> aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput {
    eventually(|| async {
        let d = c.describe_secret().secret_id(id).send().await.ok()?;
        let pending = d
            .version_ids_to_stages()?
            .values()
            .any(|s| s.contains(&"AWSPENDING".to_string()));
        (d.last_rotated_date().is_some() && !pending).then_some(d)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_secret_with_the_builtin_function() {
    // Per-secret gauges (checked below) are opt-in.
    let config = keyroll_server::Config {
        metrics_secret_labels: true,
        ..keyroll_server::Config::default()
    };
    let t = start_with(
        config,
        std::sync::Arc::new(keyroll_core::time::SystemClock),
        None,
    )
    .await;
    let c = t.client();
    let arn = c
        .create_secret()
        .name("gen")
        .secret_string(r#"{"username":"u","password":"old-password"}"#)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    // First rotation with no function at all.
    let e = c.rotate_secret().secret_id("gen").send().await.unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequestException");
    assert_eq!(
        err_message(&e),
        "No Lambda rotation function ARN is associated with this secret."
    );
    // A function that cannot run: refused and nothing saved.
    let e = c
        .rotate_secret()
        .secret_id("gen")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:nobody")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDeniedException");
    let d = c.describe_secret().secret_id("gen").send().await.unwrap();
    assert!(d.rotation_enabled().is_none() && d.rotation_lambda_arn().is_none());
    // Invalid rules: refused and nothing saved.
    let e = c
        .rotate_secret()
        .secret_id("gen")
        .rotation_lambda_arn(KEYROLL_FN)
        .rotation_rules(
            RotationRulesType::builder()
                .schedule_expression("rate(1 hours)")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidParameterException");

    let r = c
        .rotate_secret()
        .secret_id("gen")
        .rotation_lambda_arn(KEYROLL_FN)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let token = r.version_id().unwrap().to_string();
    let d = wait_rotated(&c, "gen").await;
    assert_eq!(d.rotation_enabled(), Some(true));
    assert_eq!(d.rotation_lambda_arn(), Some(KEYROLL_FN));
    assert_eq!(
        d.rotation_rules().unwrap().automatically_after_days(),
        Some(30)
    );
    assert!(d.next_rotation_date().is_some());
    assert_eq!(d.version_ids_to_stages().unwrap()[&token], ["AWSCURRENT"]);
    let cur = c.get_secret_value().secret_id("gen").send().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(cur.secret_string().unwrap()).unwrap();
    assert_eq!(v["username"], "u");
    assert_ne!(v["password"], "old-password");
    let prev = c
        .get_secret_value()
        .secret_id("gen")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert!(prev.secret_string().unwrap().contains("old-password"));
    // No parameters: the stored configuration is used.
    let r2 = c.rotate_secret().secret_id(&arn).send().await.unwrap();
    let token2 = r2.version_id().unwrap().to_string();
    let d = eventually(|| async {
        let d = c.describe_secret().secret_id("gen").send().await.ok()?;
        (d.version_ids_to_stages()?.get(&token2)? == &vec!["AWSCURRENT".to_string()]).then_some(d)
    })
    .await;
    assert_eq!(
        d.rotation_rules().unwrap().automatically_after_days(),
        Some(30)
    );
    // The "days since last rotation" gauge.
    let m = reqwest::get(format!("{}/metrics", t.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = m
        .lines()
        .find(|l| {
            l.starts_with(
                "keyroll_secret_seconds_since_last_rotation{region=\"us-east-1\",secret=\"gen\"}",
            )
        })
        .expect("a rotation-age gauge for the secret");
    let age: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((0.0..60.0).contains(&age), "{line}");
    assert!(m.contains("keyroll_rotations_total{outcome=\"succeeded\"} 2"));
    // CancelRotateSecret turns rotation off.
    c.cancel_rotate_secret()
        .secret_id("gen")
        .send()
        .await
        .unwrap();
    let d = c.describe_secret().secret_id("gen").send().await.unwrap();
    assert_eq!(d.rotation_enabled(), Some(false));
    assert!(d.next_rotation_date().is_none());
}

fn script_function(
    dir: &std::path::Path,
    name: &str,
    body: &str,
) -> keyroll_server::config::FunctionConfig {
    let path = dir.join(format!("{name}.sh"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    keyroll_server::config::FunctionConfig {
        command: vec!["sh".into(), path.display().to_string()],
        timeout_secs: 20,
        env: Default::default(),
        working_dir: None,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_failure_placeholder_pending_conflict_and_test_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.log");
    let mut config = keyroll_server::Config::default();
    // Records each event and fails every step: AWSPENDING stays a value-less placeholder.
    config.functions.insert(
        "broken".into(),
        script_function(
            dir.path(),
            "broken",
            &format!(
                "cat >> {} ; echo >> {}; echo 'boom: the rotation function failed' >&2; exit 3",
                log.display(),
                log.display()
            ),
        ),
    );
    config.functions.insert(
        "recorder".into(),
        script_function(
            dir.path(),
            "recorder",
            &format!("cat >> {} ; echo >> {}", log.display(), log.display()),
        ),
    );
    let t = start_with(
        config,
        std::sync::Arc::new(keyroll_core::time::SystemClock),
        None,
    )
    .await;
    let c = t.client();
    c.create_secret()
        .name("f")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let r = c
        .rotate_secret()
        .secret_id("f")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:broken")
        .send()
        .await
        .unwrap();
    let token = r.version_id().unwrap().to_string();
    // The placeholder is there at once, without a value.
    let d = c.describe_secret().secret_id("f").send().await.unwrap();
    assert_eq!(d.version_ids_to_stages().unwrap()[&token], ["AWSPENDING"]);
    let e = c
        .get_secret_value()
        .secret_id("f")
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "ResourceNotFoundException");
    // The failure becomes visible; AWSCURRENT is untouched; AWSPENDING stays.
    let (status, body) = eventually(|| async {
        let (s, v) = raw(
            &t.url,
            &t.key,
            "secretsmanager.DescribeSecret",
            r#"{"SecretId":"f"}"#,
        )
        .await;
        (v["KeyrollRotationStatus"]["State"] == "Failed").then_some((s, v))
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["KeyrollRotationStatus"]["FailedStep"], "createSecret");
    assert!(
        body["KeyrollRotationStatus"]["Message"]
            .as_str()
            .unwrap()
            .contains("boom")
    );
    assert_eq!(
        c.get_secret_value()
            .secret_id("f")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("v")
    );
    assert!(body.get("LastRotatedDate").is_none());
    let events = std::fs::read_to_string(&log).unwrap();
    let ev: serde_json::Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(ev["Step"], "createSecret");
    assert_eq!(ev["ClientRequestToken"], token.as_str());
    assert!(
        ev["SecretId"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:secretsmanager:us-east-1:")
    );
    // A rotation already pending: refused.
    let e = c.rotate_secret().secret_id("f").send().await.unwrap_err();
    assert_eq!(err_code(&e), "InvalidRequestException");
    assert!(err_message(&e).contains("previous rotation isn't complete"));
    let metrics = reqwest::get(format!("{}/metrics", t.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("keyroll_rotations_total{outcome=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("keyroll_rotation_steps_total{step=\"createSecret\",outcome=\"failed\"} 1")
    );

    // RotateImmediately=false runs only testSecret, then removes the placeholder.
    std::fs::write(&log, "").unwrap();
    c.create_secret()
        .name("g")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let r = c
        .rotate_secret()
        .secret_id("g")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:recorder")
        .rotation_rules(
            RotationRulesType::builder()
                .schedule_expression("cron(0 12 ? * MON *)")
                .duration("2h")
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .unwrap();
    let token = r.version_id().unwrap().to_string();
    let d = eventually(|| async {
        let d = c.describe_secret().secret_id("g").send().await.ok()?;
        (!d.version_ids_to_stages()?.contains_key(&token)).then_some(d)
    })
    .await;
    let events = std::fs::read_to_string(&log).unwrap();
    let steps: Vec<String> = events
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["Step"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(steps, ["testSecret"]);
    assert_eq!(d.rotation_enabled(), Some(true));
    assert!(d.last_rotated_date().is_none());
    let next = d.next_rotation_date().unwrap();
    // Next Monday 12:00 UTC.
    assert_eq!(next.secs() % 86400, 12 * 3600);
    assert_eq!(((next.secs() / 86400) + 4) % 7, 1, "a Monday");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let t = start_server().await;
    let h = reqwest::get(format!("{}/health", t.url)).await.unwrap();
    assert_eq!(h.status(), 200);
    let c = t.client();
    c.create_secret()
        .name("m")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    c.get_secret_value().secret_id("m").send().await.unwrap();
    let _ = c.get_secret_value().secret_id("absent").send().await;
    let m = reqwest::get(format!("{}/metrics", t.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("keyroll_requests_total{operation=\"GetSecretValue\",outcome=\"success\"} 1"),
        "{m}"
    );
    assert!(m.contains(
        "keyroll_requests_total{operation=\"GetSecretValue\",outcome=\"client_error\"} 1"
    ));
    assert!(m.contains("keyroll_request_duration_seconds_count{operation=\"CreateSecret\"} 1"));
    assert!(m.contains("keyroll_secrets{region=\"us-east-1\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let t = start_server().await;
    // Announce a 2 MiB body: refused from the headers, before it is read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(t.url.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nhost: x\r\nx-amz-target: secretsmanager.CreateSecret\r\n\
          content-length: 2097152\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("RequestEntityTooLargeException"));
    // 65,537 bytes: within the body limit, over Secrets Manager's value limit.
    let c = t.client();
    let e = c
        .create_secret()
        .name("big")
        .secret_string("x".repeat(65_537))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidParameterException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_running_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = keyroll_server::Config::default();
    config.functions.insert(
        "slow".into(),
        script_function(
            dir.path(),
            "slow",
            "cat > /dev/null; sleep 1; echo 'slow failure' >&2; exit 1",
        ),
    );
    let t = start_with(
        config,
        std::sync::Arc::new(keyroll_core::time::SystemClock),
        None,
    )
    .await;
    let app = t.app().clone();
    let c = t.client();
    c.create_secret()
        .name("s")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    c.rotate_secret()
        .secret_id("s")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:slow")
        .send()
        .await
        .unwrap();
    eventually(|| async { (app.rotations.active() == 1).then_some(()) }).await;
    t.server.shutdown().await;
    assert_eq!(
        app.rotations.active(),
        0,
        "shutdown returned before the rotation finished"
    );
    let rec = app.store.region("us-east-1").unwrap().find("s").unwrap();
    let status = rec
        .rotation_status
        .expect("the rotation's outcome was recorded");
    assert_eq!(status.state, keyroll_core::model::RotationState::Failed);
    assert!(status.message.unwrap().contains("slow failure"));
}
