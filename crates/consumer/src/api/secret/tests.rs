//! Secrets: `${VAR}` expansion, files read again when they change, and never a value shown.

use super::*;

fn env(name: &str) -> Option<String> {
    (name == "TOKEN").then(|| "s3cret-value".to_owned())
}

#[test]
fn variables_are_expanded_and_other_dollars_kept() {
    assert_eq!(
        expand("Bearer ${TOKEN}", env).unwrap(),
        "Bearer s3cret-value"
    );
    assert_eq!(
        expand("$5 and ${TOKEN}$", env).unwrap(),
        "$5 and s3cret-value$"
    );
    assert_eq!(expand("plain", env).unwrap(), "plain");
}

#[test]
fn a_missing_variable_is_named_and_a_malformed_one_refused() {
    assert_eq!(
        expand("Bearer ${NOPE}", env),
        Err(HeaderError::MissingVariable("NOPE".into()))
    );
    for bad in [
        "${",
        "${}",
        "${1A}",
        "${A-B}",
        "x ${TOKEN",
        "${file:/x}",
        "${file:relative}",
    ] {
        assert_eq!(expand(bad, env), Err(HeaderError::BadReference), "{bad}");
    }
}

#[test]
fn a_secret_never_prints_its_value() {
    let (name, secret) = header("Authorization", "Bearer ${TOKEN}", env, DEFAULT_RELOAD).unwrap();
    assert_eq!(name, "authorization");
    assert!(secret.header_value().unwrap().is_sensitive());
    assert_eq!(format!("{secret:?}"), "***");
    assert!(!format!("{:?}", secret.header_value().unwrap()).contains("s3cret"));
}

#[test]
fn a_value_that_cannot_be_sent_is_refused_without_showing_it() {
    let lookup = |_: &str| Some("line\nbreak".to_owned());
    let err = header("x-api-key", "${K}", lookup, DEFAULT_RELOAD).unwrap_err();
    assert_eq!(err, SecretError::Header(HeaderError::BadValue));
    assert!(!err.to_string().contains("line"));
    assert_eq!(
        header("bad name", "v", env, DEFAULT_RELOAD).unwrap_err(),
        SecretError::Header(HeaderError::BadName)
    );
}

#[test]
fn a_secret_file_is_read_at_start_and_again_once_it_changes() {
    let dir = std::env::temp_dir().join(format!("taskq-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, "first-value\n").unwrap();
    let written = format!("Bearer ${{file:{}}}", path.display());
    let (_, secret) = header("Authorization", &written, env, Duration::ZERO).unwrap();
    assert_eq!(secret.header_value().unwrap(), "Bearer first-value");
    assert!(secret.header_value().unwrap().is_sensitive());
    assert_eq!(format!("{secret:?}"), "***");

    std::fs::write(&path, "second-value-longer").unwrap();
    assert_eq!(secret.header_value().unwrap(), "Bearer second-value-longer");

    std::fs::remove_file(&path).unwrap();
    let gone = secret.header_value().unwrap_err();
    assert!(gone.to_string().contains("token"), "{gone}");
    assert!(!gone.to_string().contains("second-value"), "{gone}");
    let missing = header("Authorization", &written, env, Duration::ZERO).unwrap_err();
    assert!(matches!(missing, SecretError::File { .. }), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_secret_file_is_not_looked_at_again_within_the_reload_interval() {
    let dir = std::env::temp_dir().join(format!("taskq-secret-slow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key");
    std::fs::write(&path, "old").unwrap();
    let text = secret_text(
        &format!("${{file:{}}}", path.display()),
        env,
        Duration::from_secs(3600),
    )
    .unwrap();
    std::fs::write(&path, "new!").unwrap();
    assert_eq!(text.current().unwrap(), "old");
    std::fs::remove_dir_all(&dir).unwrap();
}
