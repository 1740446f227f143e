//! Malformed input: issuer URLs; arbitrary text and forged or oversized tokens (proptest).

use proptest::prelude::*;

use super::*;

#[test]
fn issuer_urls_must_be_https() {
    assert!("https://idp.example".parse::<IssuerUrl>().is_ok());
    assert!("https://idp.example/realms/x".parse::<IssuerUrl>().is_ok());
    for bad in [
        "http://idp.example",
        "idp.example",
        "https://idp.example?x=1",
        "https://idp.example#f",
        "ftp://x",
        "",
    ] {
        assert!(bad.parse::<IssuerUrl>().is_err(), "{bad}");
    }
    let u: IssuerUrl = "https://idp.example/".parse().unwrap();
    assert_eq!(
        u.discovery_url(),
        "https://idp.example/.well-known/openid-configuration"
    );
    assert!(OidcConfig::new("https://x".parse().unwrap(), "").is_err());
    let mut c = config();
    c.username_claim.clear();
    assert!(OidcProvider::with_key_source(c, Arc::new(Hanging)).is_err());
}

fn jwt_shaped(header: &str, payload: &str, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(payload.as_bytes()),
        sig
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any text at all, as password or bearer token: no panic, never an identity.
    #[test]
    fn arbitrary_text_is_never_accepted(text in ".{0,600}", dots in 0usize..4) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (p, _) = provider(&[&Signer::rsa("r")]);
        let text = format!("{text}{}", ".".repeat(dots));
        for c in [Credentials::Bearer(text.clone()), Credentials::Basic { user: text.clone(), password: text.clone() }] {
            prop_assert!(!matches!(rt.block_on(p.authenticate(&c, None)), Ok(Some(_))));
        }
    }

    /// JWT-shaped tokens that claim our issuer but carry arbitrary
    /// headers, unicode claims and signatures: refused, never a panic.
    #[test]
    fn forged_tokens_from_our_issuer_are_refused(
        alg in prop::sample::select(vec!["RS256", "ES256", "EdDSA", "HS256", "none", "PS512", "", "\u{0}", "RS256\u{202e}"]),
        kid in prop::option::of("\\PC{0,40}"),
        sub in "\\PC{0,300}",
        groups in prop::collection::vec("\\PC{0,30}", 0..20),
        exp in any::<i64>(),
        sig in "[A-Za-z0-9_-]{0,400}",
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let rsa = Signer::rsa("r");
        let (p, _) = provider(&[&rsa]);
        let header = json!({"alg": alg, "kid": kid}).to_string();
        let payload = json!({"iss": ISSUER, "aud": CLIENT, "sub": sub, "groups": groups, "exp": exp}).to_string();
        let token = jwt_shaped(&header, &payload, &sig);
        prop_assert!(p.recognises(&token));
        let result = rt.block_on(p.authenticate(&Credentials::Bearer(token), None));
        prop_assert!(matches!(result, Err(AuthenticationError::InvalidCredentials)));
    }

    /// Oversized tokens are not even read.
    #[test]
    fn oversized_tokens_are_not_mine(extra in 0usize..4096) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let rsa = Signer::rsa("r");
        let (p, keys) = provider(&[&rsa]);
        let big = "x".repeat(32 * 1024 + extra);
        let token = rsa.sign(&claims(json!({"pad": big})));
        prop_assert!(!p.recognises(&token));
        prop_assert!(rt.block_on(p.authenticate(&Credentials::Bearer(token.clone()), None)).unwrap().is_none());
        prop_assert!(matches!(rt.block_on(p.verify(&token)), Err(OidcRefusal::Malformed)));
        prop_assert_eq!(keys.fetches(), 0);
    }
}
