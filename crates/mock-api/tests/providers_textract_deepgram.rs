//! Providers whose result is paged or pushed, over HTTPS as a consumer's profile meets them:
//! Textract's blocks in pages until `NextToken` ends (or never, as a provider bug would), and
//! Deepgram's result, never polled, posted to its callback.

mod providers;
mod support;

use axum::http::StatusCode;
use mock_api::{Config, Shape};
use providers::{Api, config, receiver, start, textract, with_json};
use serde_json::{Value, json};
use testkit::epoch_ms;

/// Every page of a Textract job's blocks, `max` to a page: the pages' blocks and how many
/// pages there were, at most `limit` of them.
async fn textract_pages(api: &Api, id: &str, max: u64, limit: usize) -> (Vec<Value>, usize) {
    let (mut blocks, mut token, mut pages) = (Vec::new(), None::<String>, 0);
    while pages < limit {
        let mut ask = json!({"JobId": id, "MaxResults": max});
        if let Some(token) = &token {
            ask["NextToken"] = json!(token);
        }
        let page = api
            .send(textract(api, "GetDocumentTextDetection", &ask))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert_eq!(page.header("content-type"), "application/x-amz-json-1.1");
        let page = page.json();
        assert_eq!(page["JobStatus"], "SUCCEEDED");
        blocks.extend(page["Blocks"].as_array().expect("blocks").iter().cloned());
        pages += 1;
        match page["NextToken"].as_str() {
            Some(next) => {
                assert_ne!(Some(next), token.as_deref(), "a new token each page");
                token = Some(next.to_owned());
            }
            None => break,
        }
    }
    (blocks, pages)
}

#[tokio::test]
async fn a_textract_job_succeeds_and_its_blocks_come_in_pages_until_next_token_ends() {
    let api = start(Config {
        polls_until_done: 2,
        textract_blocks: 250,
        ..config(Shape::Textract)
    })
    .await;
    let document = json!({
        "DocumentLocation": {"S3Object": {"Bucket": "docs", "Name": "contract.pdf"}},
        "ClientRequestToken": "task-42",
    });

    let anonymous = api
        .send(
            api.post("/")
                .header("x-amz-target", "Textract.StartDocumentTextDetection")
                .body(document.to_string()),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.json()["__type"].is_string());

    let started = api
        .send(textract(&api, "StartDocumentTextDetection", &document))
        .await;
    assert_eq!(started.status, StatusCode::OK);
    assert_eq!(started.header("content-type"), "application/x-amz-json-1.1");
    let id = started.json()["JobId"]
        .as_str()
        .expect("a job id")
        .to_owned();
    let again = api
        .send(textract(&api, "StartDocumentTextDetection", &document))
        .await;
    assert_eq!(
        again.json()["JobId"],
        id,
        "the same ClientRequestToken, the same job"
    );

    let running = api
        .send(textract(
            &api,
            "GetDocumentTextDetection",
            &json!({ "JobId": id }),
        ))
        .await;
    assert_eq!(running.json(), json!({"JobStatus": "IN_PROGRESS"}));
    let (blocks, pages) = textract_pages(&api, &id, 100, 10).await;
    assert_eq!(pages, 3, "100 + 100 + 50");
    assert_eq!(blocks.len(), 250);
    let mut ids: Vec<_> = blocks
        .iter()
        .map(|b| b["Id"].as_str().expect("an id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 250, "every block once");
    assert_eq!(blocks[0]["BlockType"], "PAGE");
    assert_eq!(blocks[1]["BlockType"], "LINE");
    assert_eq!(blocks[249]["Page"], 5);
    let (whole, pages) = textract_pages(&api, &id, 1000, 10).await;
    assert_eq!(
        (pages, &whole),
        (1, &blocks),
        "one page of up to 1000 blocks"
    );
    let first = api
        .send(textract(
            &api,
            "GetDocumentTextDetection",
            &json!({ "JobId": id }),
        ))
        .await
        .json();
    assert_eq!(first["DocumentMetadata"]["Pages"], 5);
    assert_eq!(first.get("NextToken"), None);

    let too_many = api
        .send(textract(
            &api,
            "GetDocumentTextDetection",
            &json!({"JobId": id, "MaxResults": 1001}),
        ))
        .await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_many.json()["__type"], "InvalidParameterException");
    let unknown = api
        .send(textract(
            &api,
            "GetDocumentTextDetection",
            &json!({"JobId": "0"}),
        ))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["__type"], "InvalidJobIdException");
    assert!(unknown.json()["message"].is_string());
    assert_eq!(unknown.header("x-amzn-errortype"), "InvalidJobIdException");
    for target in [None, Some("Textract.AnalyzeDocument")] {
        let mut call = api.post("/").header("authorization", "mock-key").body("{}");
        if let Some(target) = target {
            call = call.header("x-amz-target", target);
        }
        let refused = api.send(call).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.json()["__type"], "UnknownOperationException");
        assert!(refused.json()["message"].is_string());
    }

    let failing = json!({"DocumentLocation": {"S3Object": {"Bucket": "docs", "Name": "fail: unsupported document format"}}});
    let id = api
        .submitted(
            textract(&api, "StartDocumentTextDetection", &failing),
            "JobId",
        )
        .await;
    let last = api
        .last_poll(2, || {
            textract(&api, "GetDocumentTextDetection", &json!({ "JobId": id }))
        })
        .await
        .json();
    assert_eq!(
        last,
        json!({"JobStatus": "FAILED", "StatusMessage": "unsupported document format"})
    );
    api.wait_for_stats(&[("jobs", 2), ("idempotent_replays", 1), ("done", 2)])
        .await;
}

#[tokio::test]
async fn endless_textract_pages_never_stop_giving_a_next_token() {
    let api = start(Config {
        polls_until_done: 1,
        textract_blocks: 120,
        textract_endless_pages: true,
        ..config(Shape::Textract)
    })
    .await;
    let document = json!({"DocumentLocation": {"S3Object": {"Bucket": "b", "Name": "n.pdf"}}});
    let id = api
        .submitted(
            textract(&api, "StartDocumentTextDetection", &document),
            "JobId",
        )
        .await;

    let (blocks, pages) = textract_pages(&api, &id, 50, 20).await;

    assert_eq!(pages, 20, "cut off by the caller, not by the provider");
    assert_eq!(blocks.len(), 120, "past the end, pages are empty");
}

#[tokio::test]
async fn a_deepgram_job_is_never_polled_its_full_result_is_posted_to_the_callback() {
    let hooks = receiver().await;
    // Webhooks off: Deepgram's callback is its only way to a result, so it is called anyway.
    let api = start(Config {
        job_ms: 100,
        ..config(Shape::Deepgram)
    })
    .await;
    let key = |request: reqwest::RequestBuilder| request.header("authorization", "Token mock-key");
    let audio = json!({"url": "https://example.com/audio/talk.wav"});
    let listen = format!(
        "/v1/listen?callback={}/dg&model=nova-3&smart_format=true",
        hooks.base
    );

    let anonymous = api.send(with_json(api.post(&listen), &audio)).await;
    let bearer = api
        .send(with_json(api.post(&listen), &audio).header("authorization", "Bearer mock-key"))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["err_code"], "INVALID_AUTH");
    assert!(anonymous.json()["request_id"].is_string());
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);
    let no_callback = api
        .send(key(with_json(api.post("/v1/listen?model=nova-3"), &audio)))
        .await;
    assert_eq!(no_callback.status, StatusCode::BAD_REQUEST);
    assert!(
        no_callback.json()["err_msg"]
            .as_str()
            .is_some_and(|m| m.contains("callback"))
    );
    let as_audio = api
        .send(key(api
            .post(&listen)
            .header("content-type", "audio/wav")
            .body(audio.to_string())))
        .await;
    assert_eq!(as_audio.status, StatusCode::BAD_REQUEST);

    let before = epoch_ms();
    let submitted = api.send(key(with_json(api.post(&listen), &audio))).await;
    assert_eq!(submitted.status, StatusCode::OK);
    let id = submitted.json()["request_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let posted = hooks.body_at("/dg").await;

    assert_eq!(posted["metadata"]["request_id"], id);
    assert_eq!(
        posted["metadata"]["model_info"]["mock-model-0000"]["name"],
        "nova-3"
    );
    let alternative = &posted["results"]["channels"][0]["alternatives"][0];
    assert_eq!(
        alternative["transcript"],
        "this is the transcript of talk.wav"
    );
    assert!(alternative["confidence"].is_number());
    assert_eq!(alternative["words"].as_array().map(Vec::len), Some(6));
    let sent = api.send(api.get("/webhooks")).await.json();
    let sent_at = sent["sent_at_ms"][&id].as_u64().expect("when it was sent");
    assert!(
        sent_at >= before + 100,
        "{sent_at} is job_ms after {before}"
    );

    let failing = json!({"url": "https://example.com/a.wav", "fail": "audio too short"});
    let listen = format!("/v1/listen?callback={}/dg-failed", hooks.base);
    let id = api
        .submitted(key(with_json(api.post(&listen), &failing)), "request_id")
        .await;
    let posted = hooks.body_at("/dg-failed").await;
    assert_eq!(
        posted,
        json!({"err_code": "Bad Request", "err_msg": "audio too short", "request_id": id})
    );
    let no_poll = api.send(key(api.get("/v1/listen"))).await;
    assert_eq!(no_poll.status, StatusCode::METHOD_NOT_ALLOWED);
    api.wait_for_stats(&[
        ("jobs", 2),
        ("done", 2),
        ("webhooks_sent", 2),
        ("unauthorized", 2),
    ])
    .await;
}

#[tokio::test]
async fn without_job_ms_a_deepgram_callback_comes_as_soon_as_the_submit_is_answered() {
    let hooks = receiver().await;
    let api = start(Config {
        delay_ms: 50,
        ..config(Shape::Deepgram)
    })
    .await;
    let listen = format!("/v1/listen?callback={}/dg", hooks.base);
    let audio = json!({"url": "https://example.com/a.wav"});

    let before = epoch_ms();
    let submitted = api
        .send(with_json(api.post(&listen), &audio).header("authorization", "Token mock-key"))
        .await;
    let posted = hooks.body_at("/dg").await;

    let id = submitted.json()["request_id"].clone();
    assert_eq!(posted["metadata"]["request_id"], id);
    let sent = api.send(api.get("/webhooks")).await.json();
    let sent_at = sent["sent_at_ms"][id.as_str().expect("an id")]
        .as_u64()
        .expect("when it was sent");
    assert!(
        sent_at >= before + 50,
        "{sent_at} is delay_ms after {before}"
    );
}
