//! Tokens accepted: key types, credential forms, claims to users and groups, caching.

use super::*;

#[tokio::test]
async fn accepts_tokens_signed_with_each_key_type() {
    let (rsa, ec, ed) = (Signer::rsa("r"), Signer::ec("e"), Signer::ed("d"));
    let (p, _) = provider(&[&rsa, &ec, &ed]);
    for signer in [&rsa, &ec, &ed] {
        let identity = p.verify(&signer.sign(&claims(json!({})))).await.unwrap();
        assert_eq!(identity.provider(), "oidc");
        assert_eq!(
            names(&identity),
            (
                "oidc:alice".into(),
                vec!["oidc:devs".into(), "oidc:qa".into()]
            )
        );
    }
    // An audience list naming the client is fine too.
    let token = rsa.sign(&claims(json!({"aud": ["other", CLIENT]})));
    assert!(p.verify(&token).await.is_ok());
}

#[tokio::test]
async fn as_basic_password_and_bearer_through_the_trait() {
    let rsa = Signer::rsa("r");
    let (p, _) = provider(&[&rsa]);
    let token = rsa.sign(&claims(json!({})));
    for credentials in [
        Credentials::Basic {
            user: "x".into(),
            password: token.clone(),
        },
        Credentials::Basic {
            user: String::new(),
            password: token.clone(),
        },
        Credentials::Bearer(token.clone()),
    ] {
        let (identity, source) = p.authenticate(&credentials, None).await.unwrap().unwrap();
        assert_eq!(identity.subject().to_string(), "oidc:alice");
        assert_eq!(source, TokenSource::External);
    }
}

#[tokio::test]
async fn claims_and_prefixes_follow_kube_apiserver() {
    let rsa = Signer::rsa("r");
    let keys = StaticKeys::serving(vec![rsa.jwk()]);
    let run = |config: OidcConfig, patch: Value| {
        let p = provider_with(config, &keys);
        let token = rsa.sign(&claims(patch));
        async move { p.verify(&token).await.map(|i| names(&i)) }
    };
    // Username from email, no prefix; groups prefixed otherwise; a single
    // string is one group; system: groups and invalid names are dropped.
    let c = config()
        .with_username_claim("email")
        .with_username_prefix(parse_prefix("-"))
        .with_groups_prefix(Some("idp:".into()));
    let patch = json!({"groups": ["devs", "system:masters", "bad group", "devs"]});
    assert_eq!(
        run(c.clone(), patch).await.unwrap(),
        ("alice@example.com".into(), vec!["idp:devs".into()])
    );
    assert_eq!(
        run(c.clone(), json!({"groups": "ops"})).await.unwrap().1,
        vec!["idp:ops"]
    );
    assert_eq!(
        run(c.clone(), json!({"groups": null})).await.unwrap().1,
        Vec::<String>::new()
    );
    // email_verified: absent is fine, false (or "false") is not.
    assert!(run(c.clone(), json!({"email_verified": null}))
        .await
        .is_ok());
    for bad in [json!(false), json!("false"), json!(0)] {
        let refused = run(c.clone(), json!({"email_verified": bad}))
            .await
            .unwrap_err();
        assert!(matches!(refused, OidcRefusal::EmailNotVerified));
    }
    // Without a prefix, a subject the registry reserves is no name at all.
    let bare = config().with_username_prefix(None);
    for sub in ["system:admin", "group:x", "system:serviceaccount:ns:sa"] {
        assert!(matches!(
            run(bare.clone(), json!({"sub": sub})).await,
            Err(OidcRefusal::UserName(_))
        ));
    }
    // Groups off: none, whatever the token says.
    let off = config().with_groups_claim(None);
    assert!(run(off, json!({})).await.unwrap().1.is_empty());
    // A custom groups claim; too many groups fails the login.
    let custom = config().with_groups_claim(Some("roles".into()));
    assert_eq!(
        run(custom.clone(), json!({"roles": ["x"]}))
            .await
            .unwrap()
            .1,
        vec!["oidc:x"]
    );
    let many: Vec<String> = (0..300).map(|i| format!("g{i}")).collect();
    assert!(matches!(
        run(custom, json!({"roles": many})).await,
        Err(OidcRefusal::TooManyGroups(300))
    ));
}

#[tokio::test]
async fn verified_tokens_are_remembered_until_they_expire_and_bounded() {
    let rsa = Signer::rsa("r");
    let keys = StaticKeys::serving(vec![rsa.jwk()]);
    let mut config = config();
    config.limits.verified_capacity = 8;
    let p = provider_with(config, &keys);
    let token = rsa.sign(&claims(json!({})));
    assert!(p.verify(&token).await.is_ok());
    assert_eq!(p.remembered_tokens(), 1);
    // Remembered: keys withdrawn and the issuer down, the token still works
    // until it expires.
    keys.set(None);
    assert!(p.verify(&token).await.is_ok());
    keys.set(Some(vec![rsa.jwk()]));
    for i in 0..20 {
        let t = rsa.sign(&claims(json!({"sub": format!("user{i}")})));
        assert!(p.verify(&t).await.is_ok());
        assert!(p.remembered_tokens() <= 8);
    }
    // A token that expires within the leeway is accepted but not remembered.
    let mut config2 = OidcConfig::new(ISSUER.parse().unwrap(), CLIENT).unwrap();
    config2.limits.verified_capacity = 8;
    let p = provider_with(config2, &keys);
    assert!(p
        .verify(&rsa.sign(&claims(json!({"exp": now() - 5}))))
        .await
        .is_ok());
    assert_eq!(p.remembered_tokens(), 0);
}
