//! The admin API through the client: namespaces, users, bindings, service accounts, tokens.

use axum::http::StatusCode;
use registry_api::client::{Client, ClientError};
use registry_api::model::admin::{BindingRequest, NewAccessToken, NewUser, PruneRequest};
use registry_auth::Role;

use crate::support::{secured, user};

#[tokio::test]
async fn admin_api_round_trip() {
    let url = secured().await;
    let admin = user(&url, "admin");
    assert_eq!(admin.whoami().await.unwrap().subject, "user:admin");

    let ns = "ops".parse().unwrap();
    assert_eq!(admin.create_namespace(&ns).await.unwrap().name, ns);
    let conflict = admin.create_namespace(&ns).await;
    assert!(
        matches!(&conflict, Err(ClientError::Api { status, .. }) if *status == StatusCode::CONFLICT),
        "{conflict:?}"
    );
    assert!(admin.namespaces().await.unwrap().namespaces.contains(&ns));

    let created = admin
        .create_user(&NewUser::new("dave", "dave-password"))
        .await
        .unwrap();
    assert_eq!(created.name.as_str(), "dave");
    let short = admin.create_user(&NewUser::new("erin", "short")).await;
    assert!(
        matches!(&short, Err(ClientError::Api { code, .. }) if code == "NAME_INVALID"),
        "{short:?}"
    );
    assert!(admin
        .users()
        .await
        .unwrap()
        .users
        .iter()
        .any(|u| u.name.as_str() == "dave"));

    let binding = BindingRequest::new("registry-viewer", "user:dave");
    let added = admin.add_role_binding(&ns, &binding).await.unwrap();
    assert_eq!(
        (added.role, added.subject.as_str()),
        (Role::Viewer, "user:dave")
    );
    assert_eq!(
        admin.role_bindings(&ns).await.unwrap().rolebindings,
        vec![added]
    );
    admin.remove_role_binding(&ns, &binding).await.unwrap();
    assert!(admin
        .role_bindings(&ns)
        .await
        .unwrap()
        .rolebindings
        .is_empty());
    let metrics = BindingRequest::new("metrics-viewer", "user:dave");
    admin.add_cluster_role_binding(&metrics).await.unwrap();
    assert_eq!(
        admin
            .cluster_role_bindings()
            .await
            .unwrap()
            .clusterrolebindings
            .len(),
        2
    );
    admin.remove_cluster_role_binding(&metrics).await.unwrap();

    let sa_name = "deployer".parse().unwrap();
    let sa = admin.create_service_account(&ns, &sa_name).await.unwrap();
    assert_eq!(sa.subject, "system:serviceaccount:ops:deployer");
    assert_eq!(
        admin.service_accounts(&ns).await.unwrap().serviceaccounts,
        vec![sa]
    );
    let secret = admin.pull_secret(&ns, &sa_name, false).await.unwrap();
    assert_eq!(secret.secret_type, "kubernetes.io/dockerconfigjson");
    assert_eq!(
        admin.pull_secret(&ns, &sa_name, false).await.unwrap(),
        secret
    );
    assert_ne!(
        admin.pull_secret(&ns, &sa_name, true).await.unwrap(),
        secret
    );
    admin.delete_service_account(&ns, &sa_name).await.unwrap();

    // An access token, used as the credentials of another client.
    let token = admin
        .create_token(&NewAccessToken::new(Some("ci".into()), Some(3600)))
        .await
        .unwrap();
    assert!(!format!("{token:?}").contains(&token.token));
    let with_token = Client::builder(&url)
        .access_token(&token.token)
        .build()
        .unwrap();
    assert_eq!(with_token.whoami().await.unwrap().subject, "user:admin");
    with_token.ping().await.unwrap();
    let listed = admin.tokens().await.unwrap().tokens;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used.is_some());
    admin.delete_token(&token.info.id).await.unwrap();
    assert!(matches!(
        with_token.whoami().await,
        Err(ClientError::Unauthorized { .. })
    ));

    let report = admin
        .prune(&PruneRequest::new(true, Some(0), None))
        .await
        .unwrap();
    assert!(report.dry_run);
    admin.delete_user(&"dave".parse().unwrap()).await.unwrap();
    let policy: registry_api::model::admin::NamespacePolicy =
        serde_json::from_str(r#"{"immutable_tags":["v*"],"keep_tag_revisions":2}"#).unwrap();
    assert_eq!(
        admin.set_namespace_policy(&ns, &policy).await.unwrap(),
        policy
    );
    assert_eq!(admin.namespace_policy(&ns).await.unwrap(), policy);
    admin.delete_namespace(&ns, false).await.unwrap();
    let gone = admin.delete_namespace(&ns, true).await;
    assert!(
        matches!(&gone, Err(ClientError::NotFound { code, .. }) if code == "NAME_UNKNOWN"),
        "{gone:?}"
    );
}
