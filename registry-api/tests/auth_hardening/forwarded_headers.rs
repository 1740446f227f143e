//! Forwarded headers, which decide the token realm and pull host, count only from trusted proxies.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use registry_api::auth::SecureListener;
use registry_api::AuthSettings;

use crate::common::{basic, Reply, PASSWORD};
use crate::support::{from, peer, world};

fn realm(r: &Reply) -> String {
    let challenge = r.header("www-authenticate");
    let start = challenge.find("realm=\"").unwrap() + 7;
    let end = challenge[start..].find('"').unwrap();
    challenge[start..start + end].to_owned()
}

// Fails before: any client's X-Forwarded-Proto (and Host) chose the realm;
// a TLS listener's requests were marked by a header a client could forge.
#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    let mut settings = AuthSettings::default();
    settings.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let w = world(settings).await;
    let forged = [
        ("host", "registry.example"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
    ];
    let r = from(
        &w.client,
        "192.0.2.7:4000",
        Method::GET,
        "/v2/",
        &forged,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(realm(&r), "http://registry.example/v2/token");
    // No peer recorded at all (an embedder's own server): nothing trusted.
    let r = w.client.bare(Method::GET, "/v2/", &forged).await;
    assert_eq!(realm(&r), "http://registry.example/v2/token");
    // From the proxy the forwarded headers hold, RFC 7239 first.
    let r = from(&w.client, "10.1.2.3:4000", Method::GET, "/v2/", &forged, "").await;
    assert_eq!(realm(&r), "https://evil.example/v2/token");
    let mut rfc = forged.to_vec();
    rfc.push(("forwarded", "for=192.0.2.1;proto=https;host=public.example"));
    let r = from(&w.client, "10.1.2.3:4000", Method::GET, "/v2/", &rfc, "").await;
    assert_eq!(realm(&r), "https://public.example/v2/token");
    // The TLS listener's own scheme comes as an extension.
    let req = Request::get("/v2/")
        .header("host", "registry.example")
        .extension(SecureListener)
        .extension(peer("192.0.2.7:4000"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        realm(&w.client.send(req).await),
        "https://registry.example/v2/token"
    );
    // A Host that cannot be a host is not echoed into the challenge.
    let r = from(
        &w.client,
        "192.0.2.7:4000",
        Method::GET,
        "/v2/",
        &[("host", "a\",error=\"x")],
        "",
    )
    .await;
    assert_eq!(realm(&r), "http://localhost/v2/token");
    // The Image API's pull host is decided the same way (it echoed `Host`).
    let root = basic("root", PASSWORD);
    let push = "/v2/team/app/blobs/uploads/?digest=sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";
    let r = from(
        &w.client,
        "192.0.2.7:4000",
        Method::POST,
        push,
        &[("authorization", &root)],
        "x",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let stream = "/apis/image/v1/namespaces/team/imagestreams/app";
    for (peer, host) in [
        ("192.0.2.7:4000", "registry.example"),
        ("10.1.2.3:4000", "evil.example"),
    ] {
        let mut headers = forged.to_vec();
        headers.push(("authorization", &root));
        let r = from(&w.client, peer, Method::GET, stream, &headers, "").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(
            r.json()["status"]["dockerImageRepository"],
            format!("{host}/team/app")
        );
    }
}
