//! A profile's steps beyond submit-and-poll, each pattern end to end over HTTPS against the
//! mock speaking a real provider's shape: the result fetched by a URL the submit answered
//! (fal.ai) or by a path naming a field of the done answer (OpenAI Batch's JSON Lines, Rev.ai's
//! text transcript), multipart uploads of a downloaded file or of base64 bytes (Stability,
//! ElevenLabs, the result as bytes), pages merged (Textract, per-step headers), a provider that
//! only pushes (Deepgram), and the refusals: a source or a size the profile does not allow,
//! pages that never end, a webhook that never comes, a refused call's message.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use testkit::{Process, RedisServer};

use crate::real_apis::{KEY_VAR, SECRET, TempFile, mock_for};
use crate::stack::{Stack, everything_in_redis};

/// The `QUEUES_FILE` of `stack`'s queue calling the mock through `api`, with the queue's
/// `extra` settings, polling every 100 ms.
pub(crate) fn queues_file(stack: &Stack, api: Value, extra: Value) -> TempFile {
    let mut queue = json!({"poll_interval_ms": 100, "api": api});
    if let (Some(queue), Some(extra)) = (queue.as_object_mut(), extra.as_object()) {
        queue.extend(extra.clone());
    }
    TempFile::write(
        &format!("{}.json", stack.queue_name),
        &json!({ &stack.queue_name: queue }).to_string(),
    )
}

/// A consumer of [`queues_file`], `env` on top. The file lives as long as the consumer.
pub(crate) fn consumer_of(
    stack: &Stack,
    api: Value,
    extra: Value,
    env: &[(&str, &str)],
) -> (Process, TempFile) {
    let file = queues_file(stack, api, extra);
    let path = file.path();
    let mut all = vec![("QUEUES_FILE", path.as_str()), (KEY_VAR, SECRET)];
    all.extend_from_slice(env);
    (stack.consumer(&all), file)
}

/// Submits each `(name, payload)` and answers each task's final view.
async fn run(stack: &Stack, tasks: &[(&str, Value)]) -> Vec<Value> {
    for (name, payload) in tasks {
        let (status, view) = stack.submit(name, payload).await;
        assert!(status.is_success(), "{name}: {view}");
    }
    let mut views = Vec::new();
    for (name, _) in tasks {
        views.push(stack.wait_final(name, Duration::from_secs(30)).await);
    }
    views
}

fn dead_saying(view: &Value, words: &str) {
    assert_eq!(view["state"], "dead", "{view}");
    let error = view["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(words), "{words:?} in {error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fal_polls_and_fetches_the_urls_its_submit_answered() {
    let stack = mock_for("fal", &[("MOCK_POLLS_UNTIL_DONE", "3")]);
    let api = json!({
        "base_url": stack.services.mock.base(),
        "headers": {"Authorization": format!("Key ${{{KEY_VAR}}}")},
        "submit": {"path": "/fal-ai/flux/dev", "body": "{{payload}}", "id": "/request_id"},
        "poll": {"url": "{{submit.status_url}}"},
        "status": {"pointer": "/status", "processing": ["IN_QUEUE", "IN_PROGRESS"], "done": ["COMPLETED"]},
        "fetch": {"url": "{{submit.response_url}}"},
    });
    let (_consumer, _file) = consumer_of(&stack, api, json!({}), &[]);
    let views = run(&stack, &[("cat", json!({"prompt": "a cat"}))]).await;
    assert_eq!(views[0]["state"], "done", "{}", views[0]);
    assert_eq!(
        views[0]["data"]["prompt"], "a cat",
        "the response URL's output: {}",
        views[0]
    );
    assert!(views[0]["data"]["images"].is_array(), "{}", views[0]);
    assert_eq!(views[0]["last_error"], Value::Null);
    // Only the fields later calls name are kept with the task.
    let kept: String = redis::cmd("HGET")
        .arg(
            stack
                .queue()
                .keys()
                .task(&taskq::TaskName::parse("cat").unwrap()),
        )
        .arg("kept")
        .query(&mut stack.queue_server().connection())
        .unwrap();
    let kept: Value = serde_json::from_str(&kept).unwrap();
    let mut keys: Vec<&String> = kept.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["response_url", "status_url"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_batch_fetches_its_output_file_as_json_lines_and_a_refused_submit_says_why() {
    let stack = mock_for("openai-batch", &[("MOCK_POLLS_UNTIL_DONE", "4")]);
    let api = json!({
        "base_url": stack.services.mock.base(),
        "headers": {"Authorization": format!("Bearer ${{{KEY_VAR}}}")},
        "submit": {"path": "/v1/batches", "id": "/id",
                   "body": {"input_file_id": "{{payload.input_file_id}}", "endpoint": "/v1/chat/completions", "completion_window": "24h"}},
        "poll": {"path": "/v1/batches/{{id}}"},
        "status": {"pointer": "/status", "processing": ["validating", "in_progress", "finalizing"],
                   "done": ["completed"], "failed": ["failed", "expired", "cancelled"]},
        "error": "/errors/data/0/message",
        "fetch": {"path": "/v1/files/{{done.output_file_id}}/content", "as": "text"},
    });
    let file = queues_file(&stack, api, json!({}));
    let log = TempFile::write(&format!("{}-openai.log", stack.queue_name), "");
    let mut consumer = stack.consumer_logged(
        &[
            ("QUEUES_FILE", &file.path()),
            (KEY_VAR, SECRET),
            ("RUST_LOG", "info"),
        ],
        std::path::Path::new(&log.path()),
    );
    let views = run(
        &stack,
        &[
            ("nightly", json!({"input_file_id": "file-abc"})),
            ("missing", json!({"input_file_id": "file-missing"})),
        ],
    )
    .await;
    assert_eq!(views[0]["state"], "done", "{}", views[0]);
    let lines = views[0]["data"].as_str().expect("the JSON Lines, as text");
    let parsed: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !parsed.is_empty() && parsed.iter().all(|l| l["response"]["status_code"] == 200),
        "{lines}"
    );
    // OpenAI's {"error": {"message"}} on a refused call, read by the default http_error.
    dead_saying(&views[1], "the API answered HTTP 400: ");
    assert!(
        views[1]["last_error"]
            .as_str()
            .unwrap()
            .contains("file-missing"),
        "{}",
        views[1]
    );
    // The failed call's log line says where it failed and what the provider said.
    consumer.terminate(Duration::from_secs(10));
    let logged = std::fs::read_to_string(log.path()).unwrap();
    let line = logged
        .lines()
        .find(|line| line.contains("unsuccessful answer"))
        .unwrap_or_else(|| panic!("no line for the refused call in {logged}"));
    for part in [
        format!("queue={}", stack.queue_name),
        "task=\"missing\"".to_owned(),
        "step=\"submit\"".to_owned(),
        format!(
            "POST {}/v1/batches",
            stack.services.mock.base().trim_end_matches('/')
        ),
        "status=400".to_owned(),
        "said=\"Invalid 'input_file_id': 'file-missing'. File not found.\"".to_owned(),
    ] {
        assert!(line.contains(&part), "{part:?} in {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revai_transcript_is_fetched_as_text_and_its_errors_are_read_where_the_profile_says() {
    let stack = mock_for("revai", &[]);
    let api = json!({
        "base_url": stack.services.mock.base(),
        "headers": {"Authorization": format!("Bearer ${{{KEY_VAR}}}")},
        "submit": {"path": "/speechtotext/v1/jobs", "body": {"source_config": {"url": "{{payload.url}}"}}, "id": "/id"},
        "poll": {"path": "/speechtotext/v1/jobs/{{id}}"},
        "status": {"pointer": "/status", "processing": ["in_progress"], "done": ["transcribed"], "failed": ["failed"]},
        "error": "/failure_detail",
        "http_error": "/title",
        "fetch": {"path": "/speechtotext/v1/jobs/{{id}}/transcript", "headers": {"Accept": "text/plain"}, "as": "text"},
    });
    let (_consumer, _file) = consumer_of(&stack, api, json!({}), &[]);
    let views = run(
        &stack,
        &[
            ("talk", json!({"url": "https://media.test/talk.mp3"})),
            ("silent", json!({"url": "fail:the audio is silent"})),
            ("no source", json!({"url": 5})),
        ],
    )
    .await;
    assert_eq!(views[0]["state"], "done", "{}", views[0]);
    let text = views[0]["data"].as_str().expect("plain text");
    assert!(
        text.contains("Speaker 0") && text.contains("talk"),
        "{text}"
    );
    // A failed job's message is read at `error`, a refused call's at `http_error` (Rev.ai's
    // problem details, which the default pointers would miss).
    dead_saying(
        &views[1],
        "the API reported the job failed: the audio is silent",
    );
    dead_saying(
        &views[2],
        "the API answered HTTP 400: Your request parameters didn't pass validation",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_body_is_sent_url_encoded_with_values_from_earlier_answers() {
    let stack = mock_for("replicate", &[]);
    let mut api =
        testkit::replicate_profile(&stack.services.mock.base(), crate::real_apis::KEY_VAR);
    api["fetch"] = json!({
        "method": "POST",
        "path": "/echo",
        "form": {"prediction": "{{id}}", "state": "{{done.status}}", "prompt": "{{payload.prompt}}"},
    });
    let (_consumer, _file) = consumer_of(&stack, api, json!({}), &[]);
    let prompt = "a cat & a dog = 2 ünïcode+";
    let views = run(&stack, &[("form", json!({"prompt": prompt}))]).await;
    assert_eq!(views[0]["state"], "done", "{}", views[0]);
    // The mock's echo answers the fields it decoded and the content type it was sent.
    assert_eq!(
        views[0]["data"],
        json!({
            "content_type": "application/x-www-form-urlencoded",
            "form": {"prediction": views[0]["remote_id"], "state": "succeeded", "prompt": prompt},
        }),
    );
}

/// Stability's creative upscale: a multipart submit whose image is downloaded from `image`.
fn stability_upscale(stack: &Stack, image: Value) -> Value {
    json!({
        "base_url": stack.services.mock.base(),
        "headers": {"Authorization": format!("Bearer ${{{KEY_VAR}}}")},
        "allow_private_sources": true,
        "submit": {"path": "/v2beta/stable-image/upscale/creative", "id": "/id",
                   "multipart": {"image": image, "prompt": "{{payload.prompt}}", "output_format": "png"}},
        "poll": {"path": "/v2beta/results/{{id}}", "headers": {"Accept": "application/json"}},
        "status": {"http": {"processing": [202], "done": [200]}},
        "result": "/image",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_submit_streams_a_downloaded_file_or_the_tasks_own_bytes() {
    let stack = mock_for("stability-upscale", &[]);
    let image =
        json!({"url": "{{payload.image_url}}", "filename": "in.png", "content_type": "image/png"});
    let (_consumer, _file) = consumer_of(&stack, stability_upscale(&stack, image), json!({}), &[]);
    let file = mock_api::content::file("cat.png", 5000);
    let url = format!("{}/files/cat.png?bytes=5000", stack.services.mock.base());
    let views = run(
        &stack,
        &[("up", json!({"image_url": url, "prompt": "sharper"}))],
    )
    .await;
    assert_eq!(views[0]["state"], "done", "{}", views[0]);
    let got = STANDARD.decode(views[0]["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        got,
        mock_api::shapes::upscaled(&file, "sharper"),
        "the very file went up"
    );
    drop(_consumer);

    let stack = mock_for("stability-upscale", &[]);
    let bytes = json!({"base64": "{{payload.image_b64}}", "filename": "in.png"});
    let (_consumer, _file) = consumer_of(&stack, stability_upscale(&stack, bytes), json!({}), &[]);
    let small = b"\x89PNG tiny image".to_vec();
    let views = run(
        &stack,
        &[(
            "b64",
            json!({"image_b64": STANDARD.encode(&small), "prompt": "p"}),
        )],
    )
    .await;
    assert_eq!(views[0]["state"], "done", "{}", views[0]);
    let got = STANDARD.decode(views[0]["data"].as_str().unwrap()).unwrap();
    assert_eq!(got, mock_api::shapes::upscaled(&small, "p"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_from_a_private_address_or_over_the_limit_is_refused_at_once() {
    let stack = mock_for("stability-upscale", &[]);
    let image = json!({"url": "{{payload.image_url}}"});
    let mut private = stability_upscale(&stack, image);
    private["allow_private_sources"] = json!(false);
    let (consumer, _file) = consumer_of(&stack, private, json!({}), &[]);
    let url = format!("{}/files/a.png", stack.services.mock.base());
    let views = run(
        &stack,
        &[("private", json!({"image_url": url, "prompt": "p"}))],
    )
    .await;
    dead_saying(&views[0], "refused");
    assert_eq!(views[0]["claims"], 1, "permanent: not retried");
    drop(consumer);

    let image = json!({"url": "{{payload.image_url}}"});
    let api = stability_upscale(&stack, image);
    let (_consumer, _file) = consumer_of(&stack, api, json!({"max_upload_bytes": 1000}), &[]);
    let url = format!("{}/files/b.png?bytes=5000", stack.services.mock.base());
    let views = run(
        &stack,
        &[("large", json!({"image_url": url, "prompt": "p"}))],
    )
    .await;
    dead_saying(&views[0], "over 1000 bytes");
    let stats = stack.mock_stats().await;
    assert_eq!(
        stats["jobs"], 0,
        "nothing was sent to the provider: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elevenlabs_dub_uploads_a_file_and_fetches_its_audio_as_bytes_or_refuses_one_too_large()
{
    let stack = mock_for("elevenlabs-dubbing", &[]);
    let api = json!({
        "base_url": stack.services.mock.base(),
        "headers": {"xi-api-key": format!("${{{KEY_VAR}}}")},
        "allow_private_sources": true,
        "submit": {"path": "/v1/dubbing", "id": "/dubbing_id",
                   "multipart": {"file": {"url": "{{payload.video}}", "content_type": "video/mp4"},
                                 "target_lang": "{{payload.lang}}"}},
        "poll": {"path": "/v1/dubbing/{{id}}"},
        "status": {"pointer": "/status", "processing": ["queued", "preparing", "dubbing"], "done": ["dubbed"], "failed": ["failed"]},
        "error": "/error",
        "fetch": {"path": "/v1/dubbing/{{id}}/audio/{{payload.lang}}", "as": "base64"},
    });
    let (_consumer, _file) = consumer_of(&stack, api.clone(), json!({}), &[]);
    let url = format!("{}/files/talk.mp4?bytes=3000", stack.services.mock.base());
    let views = run(&stack, &[("dub", json!({"video": url, "lang": "es"}))]).await;
    assert_eq!(views[0]["state"], "done", "{}", views[0]);
    let audio = STANDARD.decode(views[0]["data"].as_str().unwrap()).unwrap();
    let source = mock_api::content::file("talk.mp4", 3000);
    assert_eq!(audio, mock_api::shapes::dubbed(&source, "es"));
    drop(_consumer);

    // A result over max_result_bytes is a permanent failure that says so.
    let (_consumer, _file) = consumer_of(&stack, api, json!({"max_result_bytes": 100}), &[]);
    let views = run(&stack, &[("big", json!({"video": url, "lang": "fr"}))]).await;
    dead_saying(&views[0], "max_result_bytes of 100");
}

/// Textract's asynchronous text detection: one path, the operation in a header per step, the
/// blocks in pages of 100.
fn textract(stack: &Stack, max_pages: u32) -> Value {
    json!({
        "base_url": stack.services.mock.base(),
        "headers": {"Authorization": format!("${{{KEY_VAR}}}"), "Content-Type": "application/x-amz-json-1.1"},
        "submit": {"path": "/", "headers": {"X-Amz-Target": "Textract.StartDocumentTextDetection"},
                   "body": {"DocumentLocation": {"S3Object": {"Bucket": "docs", "Name": "{{payload.name}}"}}},
                   "id": "/JobId"},
        "poll": {"method": "POST", "path": "/", "headers": {"X-Amz-Target": "Textract.GetDocumentTextDetection"},
                 "body": {"JobId": "{{id}}", "MaxResults": 100},
                 "pages": {"next": "/NextToken", "param": "NextToken", "in": "body", "merge": "/Blocks", "max": max_pages}},
        "status": {"pointer": "/JobStatus", "processing": ["IN_PROGRESS"], "done": ["SUCCEEDED", "PARTIAL_SUCCESS"], "failed": ["FAILED"]},
        "error": "/StatusMessage",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn textract_pages_are_merged_with_each_steps_own_operation_header() {
    let stack = mock_for("textract", &[("MOCK_TEXTRACT_BLOCKS", "250")]);
    let (_consumer, _file) = consumer_of(&stack, textract(&stack, 10), json!({}), &[]);
    let views = run(&stack, &[("doc", json!({"name": "scan.pdf"}))]).await;
    assert_eq!(views[0]["state"], "done", "{}", views[0]);
    assert_eq!(
        views[0]["data"]["Blocks"].as_array().unwrap().len(),
        250,
        "three pages of 100"
    );
    assert!(views[0]["data"].get("NextToken").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_that_never_end_are_stopped_at_the_profiles_max() {
    let stack = mock_for("textract", &[("MOCK_TEXTRACT_ENDLESS_PAGES", "1")]);
    let (_consumer, _file) = consumer_of(&stack, textract(&stack, 5), json!({}), &[]);
    let views = run(&stack, &[("loop", json!({"name": "scan.pdf"}))]).await;
    dead_saying(&views[0], "more than 5 pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_only_pushes_gives_its_result_in_the_webhook_or_the_task_dies_waiting() {
    let hook_secret = "hook-secret-for-the-push-test";
    let stack = Stack::start_with_producer_env(
        RedisServer::start(),
        &[
            ("MOCK_SHAPE", "deepgram"),
            ("MOCK_API_KEY", SECRET),
            ("MOCK_DELAY_MS", "20"),
            ("MOCK_JOB_MS", "300"),
        ],
        &[("HOOK_SECRET", hook_secret)],
    );
    let api = json!({
        "base_url": stack.services.mock.base(),
        "headers": {"Authorization": format!("Token ${{{KEY_VAR}}}")},
        "submit": {"path": "/v1/listen?callback={{webhook_url}}&model=nova-3",
                   "body": {"url": "{{payload.url}}"}, "id": "/request_id"},
        "hook": {"result": "/results/channels/0/alternatives/0/transcript"},
    });
    let public_url = format!("http://{}", stack.producer());
    let env = [
        ("PUBLIC_URL", public_url.as_str()),
        ("HOOK_SECRET", hook_secret),
    ];
    let (_consumer, _file) = consumer_of(&stack, api.clone(), json!({}), &env);
    let views = run(
        &stack,
        &[("speech", json!({"url": "https://media.test/a.wav"}))],
    )
    .await;
    assert_eq!(views[0]["state"], "done", "{}", views[0]);
    assert!(
        views[0]["data"].as_str().is_some_and(|t| !t.is_empty()),
        "the transcript: {}",
        views[0]
    );
    let stats = stack.mock_stats().await;
    assert_eq!(stats["webhooks_sent"], 1, "{stats}");
    drop(_consumer);

    // A webhook that never comes (the job outlasts the queue's max_poll_secs).
    let stack = Stack::start_with_producer_env(
        RedisServer::start(),
        &[
            ("MOCK_SHAPE", "deepgram"),
            ("MOCK_API_KEY", SECRET),
            ("MOCK_DELAY_MS", "20"),
            ("MOCK_JOB_MS", "60000"),
        ],
        &[("HOOK_SECRET", hook_secret)],
    );
    let public_url = format!("http://{}", stack.producer());
    let env = [
        ("PUBLIC_URL", public_url.as_str()),
        ("HOOK_SECRET", hook_secret),
    ];
    let mut api = api;
    api["base_url"] = json!(stack.services.mock.base());
    let (_consumer, _file) = consumer_of(&stack, api, json!({"max_poll_secs": 2}), &env);
    let views = run(
        &stack,
        &[("silent", json!({"url": "https://media.test/b.wav"}))],
    )
    .await;
    dead_saying(&views[0], "no webhook came");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_step_shows_a_credential_or_a_files_query_in_logs_or_redis() {
    let stack = mock_for("stability-upscale", &[]);
    let image = json!({"url": "{{payload.image_url}}"});
    let mut api = stability_upscale(&stack, image);
    api["poll"]["headers"]["X-Step-Key"] = json!(format!("${{{KEY_VAR}}}"));
    let log = TempFile::write(&format!("{}-steps.log", stack.queue_name), "");
    let file = queues_file(&stack, api, json!({}));
    let mut consumer = stack.consumer_logged(
        &[
            ("QUEUES_FILE", &file.path()),
            (KEY_VAR, SECRET),
            ("RUST_LOG", "trace"),
        ],
        std::path::Path::new(&log.path()),
    );
    let file_secret = "file-sig-7f3d9a";
    let url = format!(
        "{}/files/c.png?sig={file_secret}",
        stack.services.mock.base()
    );
    let views = run(
        &stack,
        &[("quiet", json!({"image_url": url, "prompt": "p"}))],
    )
    .await;
    assert_eq!(views[0]["state"], "done", "{}", views[0]);
    consumer.terminate(Duration::from_secs(10));
    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(logged.lines().count() > 20, "trace logs were written");
    assert!(
        !logged.contains(SECRET),
        "a step's credential leaked into the log"
    );
    assert!(
        !logged.contains(file_secret),
        "a file URL's query leaked into the log"
    );
    let stored = everything_in_redis(stack.queue_server());
    assert!(!stored.contains(SECRET), "a credential is in Redis");
}
