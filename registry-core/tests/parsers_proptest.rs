//! Property tests: every parser returns `Ok` or a typed error for any input,
//! and accepted values round-trip through their string form.

use proptest::prelude::*;
use registry_core::{Algorithm, Digest, Manifest, Reference, RepositoryName, Tag};

proptest! {
    #[test]
    fn digest_never_panics(s in "\\PC{0,200}") {
        if let Ok(d) = s.parse::<Digest>() {
            prop_assert_eq!(d.to_string(), s);
        }
    }

    #[test]
    fn digest_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..256), sha512 in any::<bool>()) {
        let alg = if sha512 { Algorithm::Sha512 } else { Algorithm::Sha256 };
        let d = Digest::of(alg, &bytes);
        let back: Digest = d.to_string().parse().unwrap();
        prop_assert_eq!(back, d);
    }

    #[test]
    fn name_never_panics(s in "\\PC{0,300}") {
        if let Ok(n) = s.parse::<RepositoryName>() {
            prop_assert_eq!(n.as_str(), s.as_str());
            prop_assert!(!n.namespace().is_empty());
            prop_assert!(!n.stream().is_empty());
        }
    }

    #[test]
    fn grammar_names_are_accepted(
        comps in proptest::collection::vec("[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}", 2..5)
    ) {
        let s = comps.join("/");
        prop_assume!(s.len() <= 255);
        let n: RepositoryName = s.parse().unwrap();
        prop_assert_eq!(n.to_string(), s);
    }

    #[test]
    fn tag_and_reference_never_panic(s in "\\PC{0,200}") {
        if let Ok(t) = s.parse::<Tag>() {
            prop_assert_eq!(t.as_str(), s.as_str());
        }
        if let Ok(r) = s.parse::<Reference>() {
            prop_assert_eq!(r.to_string(), s);
        }
    }

    #[test]
    fn grammar_tags_are_accepted(s in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}") {
        prop_assert_eq!(s.parse::<Tag>().unwrap().to_string(), s);
    }

    #[test]
    fn manifest_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), ct in proptest::option::of("\\PC{0,60}")) {
        let _ = Manifest::parse(ct.as_deref(), &bytes);
    }

    #[test]
    fn manifest_json_shapes_never_panic(
        schema in prop_oneof![Just("1"), Just("2"), Just("\"2\""), Just("null")],
        media in prop_oneof![Just("application/vnd.oci.image.manifest.v1+json"), Just("application/vnd.oci.image.index.v1+json"), Just("x")],
        body in prop_oneof![Just("\"config\":{}"), Just("\"layers\":[1]"), Just("\"manifests\":[{\"digest\":\"sha256:1\"}]"), Just("\"subject\":7"), Just("\"config\":{\"mediaType\":\"a\",\"digest\":\"sha512:00\",\"size\":1},\"layers\":[]")]
    ) {
        let doc = format!(r#"{{"schemaVersion":{schema},"mediaType":"{media}",{body}}}"#);
        let _ = Manifest::parse(None, doc.as_bytes());
    }
}
