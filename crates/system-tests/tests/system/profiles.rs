//! The ready profiles of `profiles/`: each file passes `consumer --check` as shipped (its
//! variables given made-up values), `profiles/README.md` lists exactly the files there are, and
//! each profile whose provider the mock speaks runs end to end against it over HTTPS, only its
//! `base_url` pointed at the mock. Also `--check` itself: every mistake of a file at once, named
//! by queue and key, never a value, and an empty queue name refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{RedisServer, run_to_end};

use crate::real_apis::{SECRET, TempFile, mock_for};
use crate::stack::Stack;

pub(crate) fn profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles")
}

/// Every profile file: its path and its one queue's name.
fn profiles() -> Vec<(PathBuf, String)> {
    let mut found: Vec<(PathBuf, String)> = std::fs::read_dir(profiles_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let queues: Vec<&String> = file.as_object().unwrap().keys().collect();
            assert_eq!(queues.len(), 1, "{}: one queue per file", path.display());
            let queue = queues[0].clone();
            assert_eq!(
                path.file_stem().unwrap().to_str().unwrap(),
                queue,
                "a file is named for its queue"
            );
            (path, queue)
        })
        .collect();
    found.sort();
    found
}

/// The `${VAR}` names `text` reads.
fn variables(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

/// The value a test gives variable `name`: a word (letters, digits and '-', which a host, a
/// region or a key all take), or for a key file's path the path of a service-account key file
/// made for the test.
fn made_up(name: &str) -> String {
    if name == "GOOGLE_APPLICATION_CREDENTIALS" {
        return service_account_key_file().display().to_string();
    }
    format!("made-up-{}", name.to_lowercase().replace('_', "-"))
}

/// A Google service-account key file with a key `openssl` makes, made once per test run.
fn service_account_key_file() -> &'static Path {
    static KEY: std::sync::OnceLock<(testkit::RsaKey, PathBuf)> = std::sync::OnceLock::new();
    let (_, file) = KEY.get_or_init(|| {
        let key = testkit::RsaKey::generate();
        let file = key.service_account_file(
            "runner@made-up.iam.gserviceaccount.com",
            "https://oauth2.googleapis.com/token",
        );
        (key, file)
    });
    file
}

/// `consumer --check` of `file` serving `queue`, every variable it names set to a made-up
/// value (and the hook settings a push-only profile needs); the exit status, stdout and stderr.
async fn check(file: &Path, queue: &str) -> (bool, String, String) {
    let text = std::fs::read_to_string(file).unwrap();
    let made_up: Vec<(String, String)> = variables(&text)
        .into_iter()
        .map(|name| (name.clone(), made_up(&name)))
        .collect();
    let path = file.display().to_string();
    let mut env: Vec<(&str, &str)> = vec![
        ("QUEUES", queue),
        ("QUEUES_FILE", &path),
        ("PUBLIC_URL", "https://taskq.example.com"),
        ("HOOK_SECRET", "a-hook-secret-of-16-bytes-or-more"),
    ];
    env.extend(made_up.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let output = run_to_end("consumer", &["--check"], &env).await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn every_ready_profile_passes_the_check_and_shows_its_calls_without_values() {
    let profiles = profiles();
    assert!(profiles.len() >= 11, "{profiles:?}");
    for (file, queue) in &profiles {
        let (ok, report, errors) = check(file, queue).await;
        assert!(ok, "{}: {errors}", file.display());
        assert!(report.starts_with(&format!("queue {queue}\n")), "{report}");
        let profile: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let api = &profile[queue]["api"];
        for step in ["submit", "poll", "fetch"] {
            assert_eq!(
                report.contains(&format!("  {step} ")),
                api.get(step).is_some(),
                "{queue}: the {step} step in {report}"
            );
        }
        // A header's value may be a credential; a base URL's variable is a host or a path.
        for name in variables(&api["headers"].to_string()) {
            assert!(
                !report.contains(&made_up(&name)),
                "{queue}: the value of {name} shows: {report}"
            );
        }
    }
}

#[test]
fn the_profiles_readme_lists_exactly_the_files_there_are() {
    let readme = std::fs::read_to_string(profiles_dir().join("README.md")).unwrap();
    for (file, _) in profiles() {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            readme.contains(&format!("[`{name}`]({name})")),
            "README.md does not list {name}"
        );
    }
    for listed in readme.split("](").skip(1) {
        let target = listed.split(')').next().unwrap();
        if target.ends_with(".json") {
            assert!(
                profiles_dir().join(target).exists(),
                "README.md lists {target}, which is not there"
            );
        }
    }
}

/// `consumer --check` serving `queues` from the `QUEUES_FILE` at `path`, with the variable its
/// test files name.
async fn check_file(queues: &str, path: &str) -> std::process::Output {
    run_to_end(
        "consumer",
        &["--check"],
        &[
            ("QUEUES", queues),
            ("QUEUES_FILE", path),
            ("CHECK_TOKEN", "tok-abc-123"),
        ],
    )
    .await
}

#[tokio::test]
async fn the_check_names_every_mistake_by_queue_and_key_and_never_a_value() {
    let file = TempFile::write(
        "check-mistakes.json",
        &json!({
            "good": {"api": {"base_url": "https://api.example.com",
                              "headers": {"Authorization": "Bearer ${CHECK_TOKEN}"},
                              "poll": {"path": "/jobs/{{name}}?key=abc"},
                              "status": {"pointer": "/s", "done": ["d"]}}},
            "typo": {"api": {"base_url": "https://api.example.com",
                              "poll": {"path": "/x"},
                              "status": {"pointer": "/s", "processing": "secret-looking-word", "done": ["d"]}}},
            "unknown": {"api": {"base_url": "https://api.example.com",
                                 "poll": {"path": "/x", "hedaers": {}},
                                 "status": {"pointer": "/s", "done": ["d"]}}},
            "missing": {"api": {"base_url": "https://api.example.com",
                                 "headers": {"X-Key": "${CHECK_MISSING_VAR}"},
                                 "poll": {"path": "/x"},
                                 "status": {"pointer": "/s", "done": ["d"]}}},
        })
        .to_string(),
    );
    let path = file.path();
    let output = check_file("good,typo,unknown,missing", &path).await;
    let errors = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{errors}");
    for said in [
        "queue typo: api.status.processing: invalid type",
        "queue unknown: api.poll.hedaers: unknown field `hedaers`",
        "queue missing: api.headers.X-Key",
        "CHECK_MISSING_VAR",
    ] {
        assert!(errors.contains(said), "{said:?} in {errors}");
    }
    assert!(errors.contains(&path), "the file is named: {errors}");
    assert!(!errors.contains("secret-looking-word"), "{errors}");
    assert!(
        !errors.contains("good"),
        "a good queue is no mistake: {errors}"
    );

    // Even an entry QUEUES leaves out is compiled: a mistake there fails the check too.
    let output = check_file("good", &path).await;
    assert_eq!(output.status.code(), Some(1));

    let good = TempFile::write(
        "check-good.json",
        &json!({
            "good": {"api": {"base_url": "https://api.example.com",
                              "headers": {"Authorization": "Bearer ${CHECK_TOKEN}"},
                              "poll": {"path": "/jobs/{{name}}?key=abc"},
                              "status": {"pointer": "/s", "done": ["d"]}}},
            "later": {"api_url": "https://other.example.com/poll"},
        })
        .to_string(),
    );
    let path = good.path();
    let output = check_file("good", &path).await;
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert_eq!(
        report,
        "queue good\n  poll   GET https://api.example.com/jobs/{{name}}?key=… (headers: authorization)\n\
         queue later (not served: QUEUES leaves it out)\n  call   GET https://other.example.com/poll?task-name=…\n"
    );
}

/// A list with an empty name is refused; an empty variable is an unset one (as for every
/// setting: compose passes `QUEUES: ${QUEUES:-}` through empty), so `QUEUES=` serves
/// `QUEUE_NAME`'s queue, never a queue named `""`.
#[tokio::test]
async fn an_empty_queue_name_is_refused_and_an_empty_variable_is_unset() {
    let flag = ["--check", "--queues", ""];
    let refused = [
        (&flag[..], None),
        (&flag[..1], Some(("QUEUES", "a,,b"))),
        (&flag[..1], Some(("QUEUES", " "))),
    ];
    for (args, var) in refused {
        let env = Vec::from_iter(var);
        let output = run_to_end("consumer", args, &env).await;
        let errors = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {errors}");
        assert!(errors.contains("an empty queue name"), "{errors}");
        let output = run_to_end("producer", &["--help"], &env).await;
        assert!(output.status.success(), "--help works whatever QUEUES says");
    }
    let env = [("QUEUES", ""), ("QUEUE_NAME", "fallback")];
    let output = run_to_end("consumer", &["--check"], &env).await;
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "QUEUES= is unset: {output:?}");
    assert!(report.starts_with("queue fallback\n"), "{report}");
}

/// A binary that cannot start says why once: each cause in the message of the error that
/// carries it, never again as that error's source.
#[tokio::test]
async fn a_start_error_names_its_cause_once() {
    let cases: [(&str, &[(&str, &str)]); 3] = [
        ("consumer", &[("QUEUES_FILE", "/nonexistent/queues.json")]),
        (
            "consumer",
            &[
                ("API_CA_FILE", "/nonexistent/ca.pem"),
                ("API_URL", "https://api.example.com/"),
            ],
        ),
        (
            "producer",
            &[("REDIS_TLS_CA_FILE", "/nonexistent/redis-ca.pem")],
        ),
    ];
    for (binary, env) in cases {
        let mut env = env.to_vec();
        env.extend([
            ("RUST_BACKTRACE", "0"),
            ("REDIS_URL", "redis://127.0.0.1:1/"),
        ]);
        let output = run_to_end(binary, &[], &env).await;
        let errors = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{binary} {env:?}: {errors}");
        let error = &errors[errors.find("Error: ").expect("the error is printed")..];
        assert_eq!(
            error.matches("/nonexistent/").count(),
            1,
            "{binary} {env:?}: the file named once in\n{error}"
        );
        assert_eq!(
            error.matches("No such file or directory").count(),
            1,
            "{binary} {env:?}: the cause said once in\n{error}"
        );
    }
}

/// A ready profile run against the mock speaking its provider's shape.
struct Run {
    /// The file's queue.
    queue: &'static str,
    /// The mock's shape.
    shape: &'static str,
    /// A task's payload (`{files}` replaced by the mock's file host).
    payload: Value,
    /// Whether the done task's data is what the provider's result is.
    result_ok: fn(&Value) -> bool,
}

fn runs() -> Vec<Run> {
    vec![
        Run {
            queue: "replicate",
            shape: "replicate",
            payload: json!({"version": "v1", "input": {"prompt": "a cat"}}),
            result_ok: |data| data.is_object() || data.is_array() || data.is_string(),
        },
        Run {
            queue: "gemini-veo",
            shape: "google",
            payload: json!({"model": "veo-3.1-generate-preview",
                            "instances": [{"prompt": "a cat"}], "parameters": {}}),
            result_ok: Value::is_object,
        },
        Run {
            queue: "azure-document-intelligence",
            shape: "azure",
            payload: json!({"url": "https://docs.example.com/invoice.pdf"}),
            result_ok: Value::is_object,
        },
        Run {
            queue: "openai-batch",
            shape: "openai-batch",
            payload: json!({"input_file_id": "file-abc", "endpoint": "/v1/chat/completions"}),
            result_ok: |data| data.as_str().is_some_and(|lines| lines.lines().count() > 0),
        },
        Run {
            queue: "revai",
            shape: "revai",
            payload: json!({"url": "https://media.example.com/talk.mp3"}),
            result_ok: |data| data["monologues"].is_array(),
        },
        Run {
            queue: "fal",
            shape: "fal",
            payload: json!({"model": "fal-ai/flux/dev", "input": {"prompt": "a cat"}}),
            result_ok: |data| data["images"].is_array(),
        },
        Run {
            queue: "elevenlabs-dubbing",
            shape: "elevenlabs-dubbing",
            payload: json!({"source_url": "{files}/talk.mp4", "target_lang": "es"}),
            result_ok: |data| data.as_str().is_some_and(|b64| !b64.is_empty()),
        },
        Run {
            queue: "stability-upscale",
            shape: "stability-upscale",
            payload: json!({"image_url": "{files}/cat.png", "prompt": "sharper"}),
            result_ok: Value::is_object,
        },
    ]
}

/// The profile of `queue` with its base URL on `stack`'s mock, polling every 100 ms, as a
/// `QUEUES_FILE` for `stack`'s queue, and the variables its headers read; downloads from the
/// mock (a loopback address) allowed.
fn pointed_at_mock(queue: &str, stack: &Stack) -> (TempFile, Vec<String>) {
    let text = std::fs::read_to_string(profiles_dir().join(format!("{queue}.json"))).unwrap();
    let mut file: Value = serde_json::from_str(&text).unwrap();
    let mut entry = file[queue].take();
    entry["api"]["base_url"] = json!(stack.services.mock.base());
    entry["poll_interval_ms"] = json!(100);
    if entry["api"]["submit"]["multipart"].is_object() {
        entry["api"]["allow_private_sources"] = json!(true);
    }
    let vars = variables(&entry["api"]["headers"].to_string());
    let file = TempFile::write(
        &format!("{}-{queue}.json", stack.queue_name),
        &json!({ &stack.queue_name: entry }).to_string(),
    );
    (file, vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ready_profile_runs_end_to_end_against_the_mock_of_its_provider() {
    for run in runs() {
        eprintln!(
            "profile {} against the mock's {} shape",
            run.queue, run.shape
        );
        let stack = mock_for(run.shape, &[]);
        let (file, vars) = pointed_at_mock(run.queue, &stack);
        let path = file.path();
        let mut env: Vec<(&str, &str)> = vec![("QUEUES_FILE", &path)];
        env.extend(vars.iter().map(|name| (name.as_str(), SECRET)));
        let _consumer = stack.consumer(&env);
        let payload: Value = serde_json::from_str(&run.payload.to_string().replace(
            "{files}",
            &format!("{}/files", stack.services.mock.base().trim_end_matches('/')),
        ))
        .unwrap();
        let (status, view) = stack.submit("ready", &payload).await;
        assert!(status.is_success(), "{}: {view}", run.queue);
        let view = stack.wait_final("ready", Duration::from_secs(30)).await;
        assert_eq!(view["state"], "done", "{}: {view}", run.queue);
        assert!((run.result_ok)(&view["data"]), "{}: {view}", run.queue);
        assert_eq!(stack.mock_stats().await["unauthorized"], 0, "{}", run.queue);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deepgram_profile_gets_its_transcript_from_the_webhook() {
    let hook_secret = "a-hook-secret-of-16-bytes-or-more";
    let stack = Stack::start_with_producer_env(
        RedisServer::start(),
        &[
            ("MOCK_SHAPE", "deepgram"),
            ("MOCK_API_KEY", SECRET),
            ("MOCK_DELAY_MS", "20"),
            ("MOCK_JOB_MS", "200"),
        ],
        &[("HOOK_SECRET", hook_secret)],
    );
    let (file, vars) = pointed_at_mock("deepgram", &stack);
    let path = file.path();
    let public_url = format!("http://{}", stack.producer());
    let mut env: Vec<(&str, &str)> = vec![
        ("QUEUES_FILE", &path),
        ("PUBLIC_URL", &public_url),
        ("HOOK_SECRET", hook_secret),
    ];
    env.extend(vars.iter().map(|name| (name.as_str(), SECRET)));
    let _consumer = stack.consumer(&env);
    let payload = json!({"url": "https://media.example.com/a.wav", "model": "nova-3"});
    let (status, view) = stack.submit("ready", &payload).await;
    assert!(status.is_success(), "{view}");
    let view = stack.wait_final("ready", Duration::from_secs(30)).await;
    assert_eq!(view["state"], "done", "{view}");
    assert!(
        view["data"]["channels"][0]["alternatives"][0]["transcript"].is_string(),
        "{view}"
    );
}
