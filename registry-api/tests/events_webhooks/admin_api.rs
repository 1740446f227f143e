//! The webhook and audit endpoints of the admin API: bad input and
//! strangers refused, and the audit trail paged and filtered.

use axum::http::{Method, StatusCode};
use registry_api::model::events::AuditQuery;

use crate::{common, fast_events, ns, push, registry, repo, user};

/// The admin API: bad input gets 400 with a message, other callers are
/// refused, missing things are 404.
#[tokio::test]
async fn webhook_and_audit_endpoints_refuse_bad_input_and_strangers() {
    let r = registry(fast_events(false)).await;
    let alice = common::as_user(&r, Some("alice"));
    let bob = common::as_user(&r, Some("bob"));
    let nobody = common::as_user(&r, None);
    let hooks = "/apis/admin/v1/namespaces/team/webhooks";
    let json = [("content-type", "application/json")];
    let post = |client: &common::Client, body: &'static str| {
        let client = common::Client {
            app: client.app.clone(),
        };
        async move { client.call(Method::POST, hooks, &json, body).await }
    };

    for (body, says) in [
        (r#"{"url":"ftp://hooks.example.com/"}"#, "http or https"),
        (r#"{"url":"https://u:p@hooks.example.com/"}"#, "credentials"),
        (r#"{"url":"http://10.0.0.1/"}"#, "--webhook-allow-private"),
        (
            r#"{"url":"https://hooks.example.com/","events":["io.registry.nope"]}"#,
            "unknown event type",
        ),
        (
            r#"{"url":"https://hooks.example.com/","secret":"short"}"#,
            "secret",
        ),
        (
            r#"{"url":"https://hooks.example.com/","extra":1}"#,
            "unknown field",
        ),
        (r#"[]"#, "invalid"),
    ] {
        let reply = post(&alice, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        let text = String::from_utf8_lossy(&reply.body).to_string();
        assert!(text.contains(says), "{body}: {text}");
    }
    let good = r#"{"url":"https://hooks.example.com/x"}"#;
    assert_eq!(post(&bob, good).await.status, StatusCode::FORBIDDEN);
    assert_eq!(post(&nobody, good).await.status, StatusCode::UNAUTHORIZED);
    let created = post(&alice, good).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json()["webhook"]["id"].as_u64().unwrap();
    assert_eq!(created.json()["secret"].as_str().unwrap().len(), 64);
    let one = format!("{hooks}/{id}");
    assert_eq!(bob.get(&one).await.status, StatusCode::FORBIDDEN);
    let shown = alice.get(&one).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.json().get("secret").is_none());
    assert_eq!(
        alice.get(&format!("{hooks}/999")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        alice.get(&format!("{hooks}/x")).await.status,
        StatusCode::BAD_REQUEST
    );
    let deliveries = format!("{one}/deliveries");
    assert_eq!(alice.get(&deliveries).await.status, StatusCode::OK);
    assert_eq!(
        alice.get(&format!("{deliveries}?n=abc")).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(bob.get(&deliveries).await.status, StatusCode::FORBIDDEN);
    let redeliver = format!("{deliveries}/12345/redeliver");
    let reply = alice.call(Method::POST, &redeliver, &[], "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = bob.call(Method::POST, &redeliver, &[], "").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = bob.call(Method::DELETE, &one, &[], "").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // The cap per namespace.
    let mut config = fast_events(false);
    config.max_webhooks_per_namespace = 1;
    let capped = registry(config).await;
    let capped_alice = common::as_user(&capped, Some("alice"));
    assert_eq!(post(&capped_alice, good).await.status, StatusCode::CREATED);
    let over = post(&capped_alice, good).await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&over.body).contains("at most 1"));

    // The audit trail: alice sees her namespace, bob nothing, admin all.
    assert_eq!(
        alice.get("/apis/admin/v1/audit").await.status,
        StatusCode::OK
    );
    assert_eq!(
        alice
            .get("/apis/admin/v1/audit?namespace=other")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        bob.get("/apis/admin/v1/audit").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        nobody.get("/apis/admin/v1/audit").await.status,
        StatusCode::UNAUTHORIZED
    );
    for bad in [
        "since=yesterday",
        "type=nope",
        "namespace=UPPER",
        "n=-1",
        "bogus=1",
    ] {
        let reply = alice.get(&format!("/apis/admin/v1/audit?{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let admin = common::as_user(&r, Some("admin"));
    assert_eq!(
        admin.get("/apis/admin/v1/audit?n=1").await.status,
        StatusCode::OK
    );
    assert_eq!(
        alice.call(Method::DELETE, &one, &[], "").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(alice.get(&one).await.status, StatusCode::NOT_FOUND);
}

/// The audit trail pages with `n` and `last`, filters by actor and type.
#[tokio::test]
async fn the_audit_trail_pages_and_filters() {
    let r = registry(fast_events(true)).await;
    let (alice, admin) = (user("alice"), user("admin"));
    for i in 0..5 {
        push(
            &r,
            &alice,
            &repo("team/app"),
            &format!("v{i}"),
            &format!("s{i}"),
        )
        .await;
    }
    r.create_namespace(&admin, &ns("other")).await.unwrap();
    let mut seen = Vec::new();
    let mut query = AuditQuery {
        n: Some(2),
        ..Default::default()
    };
    loop {
        let page = r.audit(&admin, query.clone()).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|e| e.event.id.clone()));
        match page.next {
            Some(next) => query.last = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let by_actor = AuditQuery {
        actor: Some("admin".into()),
        ..Default::default()
    };
    let page = r.audit(&admin, by_actor).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        page.items[0].event.event_type,
        "io.registry.namespace.created"
    );
    let by_type = AuditQuery {
        event_type: Some("io.registry.manifest.pushed".into()),
        since: Some("2000-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    assert_eq!(r.audit(&admin, by_type).await.unwrap().items.len(), 5);
    let future = AuditQuery {
        since: Some("2999-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    assert!(r.audit(&admin, future).await.unwrap().items.is_empty());
    // Alice sees her namespace only: not the namespace creation.
    let hers = r.audit(&alice, AuditQuery::default()).await.unwrap();
    assert_eq!(hers.items.len(), 5);
}
