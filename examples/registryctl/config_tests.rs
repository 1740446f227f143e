//! Where the files are, and the contexts file.

use super::*;

#[test]
fn paths() {
    let env = Env {
        docker_config: Some("/etc/dc".into()),
        home: Some("/home/u".into()),
    };
    let explicit = Path::new("/tmp/auth.json");
    assert_eq!(auth_file_path(Some(explicit), &env).unwrap(), explicit);
    let docker = auth_file_path(None, &env).unwrap();
    assert_eq!(docker, Path::new("/etc/dc/config.json"));
    assert!(auth_file_path(None, &Env::default()).is_err());
    let contexts = contexts_path(explicit);
    assert_eq!(contexts, Path::new("/tmp/registryctl.json"));
}

#[test]
fn contexts_round_trip_privately() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registryctl.json");
    assert!(Contexts::load(&path).unwrap().contexts.is_empty());
    let mut contexts = Contexts::default();
    let context = Context {
        server: "http://localhost:5000/".into(),
        insecure: true,
        ca_file: None,
        oidc: None,
    };
    contexts
        .contexts
        .insert("localhost:5000".into(), context.clone());
    contexts.current = Some("localhost:5000".into());
    contexts.save(&path).unwrap();
    let again = Contexts::load(&path).unwrap();
    assert_eq!(again.current.as_deref(), Some("localhost:5000"));
    assert_eq!(again.contexts["localhost:5000"], context);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "temporary files left behind");
    std::fs::write(&path, "{not json").unwrap();
    assert!(Contexts::load(&path).is_err());
}
