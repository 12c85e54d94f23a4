//! Providers whose result is fetched apart from the job, over HTTPS as a consumer's profile
//! meets them: fal's queue (status and response URLs, its webhook), an OpenAI batch (its output
//! file in JSON Lines), Rev.ai (a transcript as text or JSON by `Accept`). Each test is a job's
//! whole life, its result in its format, the credential check and the error bodies.

mod providers;
mod support;

use axum::http::StatusCode;
use mock_api::{Config, Shape};
use providers::{config, receiver, start, with_json};
use serde_json::{Value, json};

#[tokio::test]
async fn fal_queues_then_completes_and_its_output_is_fetched_from_response_url() {
    let hooks = receiver().await;
    let api = start(Config {
        webhooks: true,
        ..config(Shape::Fal)
    })
    .await;
    let key = |request: reqwest::RequestBuilder| request.header("authorization", "Key mock-key");
    let input = json!({"prompt": "a cat", "num_images": 2, "seed": 7});

    let anonymous = api
        .send(with_json(api.post("/fal-ai/flux/dev"), &input))
        .await;
    let bearer = api
        .send(
            with_json(api.post("/fal-ai/flux/dev"), &input)
                .header("authorization", "Bearer mock-key"),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.json()["detail"].is_string(), "{anonymous:?}");
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);

    let hook = format!("{}/fal", hooks.base);
    let path = format!("/fal-ai/flux/dev?fal_webhook={hook}");
    let submitted = api.send(key(with_json(api.post(&path), &input))).await;
    assert_eq!(submitted.status, StatusCode::OK);
    let submitted = submitted.json();
    let id = submitted["request_id"].as_str().expect("an id");
    let requests = format!("{}/fal-ai/flux/requests/{id}", api.base);
    assert_eq!(
        submitted["status_url"],
        format!("{requests}/status"),
        "no subpath"
    );
    assert_eq!(submitted["response_url"], requests);
    assert_eq!(submitted["cancel_url"], format!("{requests}/cancel"));
    assert_eq!(submitted["gateway_request_id"], id);

    let early = api.send(key(api.get(&requests))).await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST);
    assert_eq!(early.json()["detail"], "Request is still in progress");
    let status_url = format!("{requests}/status");
    let statuses: Vec<_> = api
        .polls(3, || key(api.get(&status_url)))
        .await
        .iter()
        .map(|status| (status.status.as_u16(), status.json()))
        .collect();
    assert_eq!(statuses[0].0, 202);
    assert_eq!(statuses[0].1["status"], "IN_QUEUE");
    assert_eq!(statuses[0].1["queue_position"], 1);
    assert_eq!(statuses[1].0, 202);
    assert_eq!(statuses[1].1["status"], "IN_PROGRESS");
    assert_eq!(statuses[2].0, 200);
    assert_eq!(statuses[2].1["status"], "COMPLETED");
    assert_eq!(statuses[2].1["response_url"], requests);

    let output = api.send(key(api.get(&requests))).await;
    assert_eq!(output.status, StatusCode::OK);
    let output = output.json();
    assert_eq!(output["seed"], 7);
    assert_eq!(output["prompt"], "a cat");
    let images = output["images"].as_array().expect("images");
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["url"], format!("{}/files/{id}-0.png", api.base));
    assert_eq!(images[0]["content_type"], "image/png");
    let image = api
        .send(api.get(images[1]["url"].as_str().expect("a URL")))
        .await;
    assert_eq!(image.status, StatusCode::OK);
    assert_eq!(image.header("content-type"), "image/png");
    assert_eq!(
        image.bytes,
        mock_api::content::file(&format!("{id}-1.png"), 4096)
    );

    let posted = hooks.body_at("/fal").await;
    assert_eq!(
        posted,
        json!({"request_id": id, "gateway_request_id": id, "status": "OK", "payload": output, "error": null})
    );

    // A model that refuses its input: the status still says COMPLETED, the output is its 422.
    let failing = json!({"prompt": "x", "fail": "prompt is unsafe"});
    let path = format!("/fal-ai/flux?fal_webhook={hook}-failed");
    let submitted = api
        .send(key(with_json(api.post(&path), &failing)))
        .await
        .json();
    let (status_url, response_url) = (
        submitted["status_url"].as_str().expect("a URL"),
        submitted["response_url"].as_str().expect("a URL"),
    );
    let ended = api.last_poll(4, || key(api.get(status_url))).await;
    let refused = api.send(key(api.get(response_url))).await;
    assert_eq!(
        (ended.status, &ended.json()["status"]),
        (StatusCode::OK, &json!("COMPLETED"))
    );
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.json()["detail"][0]["msg"], "prompt is unsafe");
    let posted = hooks.body_at("/fal-failed").await;
    assert_eq!(posted["status"], "ERROR");
    assert_eq!(posted["payload"], refused.json());
    assert!(posted["error"].is_string(), "{posted}");

    let unknown = api
        .send(key(api.get("/fal-ai/flux/requests/nope/status")))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.json()["detail"].is_string());
    api.wait_for_stats(&[
        ("jobs", 2),
        ("done", 2),
        ("webhooks_sent", 2),
        ("unauthorized", 2),
        ("downloads", 1),
    ])
    .await;
    assert_eq!(hooks.count(), 2);
}

#[tokio::test]
async fn an_openai_batch_validates_runs_finalizes_and_its_output_file_is_json_lines() {
    let api = start(Config {
        polls_until_done: 4,
        ..config(Shape::OpenaiBatch)
    })
    .await;
    let key = |request: reqwest::RequestBuilder| request.header("authorization", "Bearer mock-key");
    let batch = json!({
        "input_file_id": "file-abc123",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": {"requests": "5"},
    });

    let anonymous = api.send(with_json(api.post("/v1/batches"), &batch)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["error"]["code"], "invalid_api_key");

    let created = api
        .send(key(with_json(api.post("/v1/batches"), &batch)))
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let created = created.json();
    let id = created["id"].as_str().expect("an id");
    assert!(id.starts_with("batch_"), "{id}");
    assert_eq!(
        (&created["object"], &created["status"]),
        (&json!("batch"), &json!("validating"))
    );
    assert_eq!(created["endpoint"], "/v1/chat/completions");

    let seen: Vec<_> = api
        .polls(4, || key(api.get(&format!("/v1/batches/{id}"))))
        .await
        .iter()
        .map(|polled| {
            assert_eq!(polled.status, StatusCode::OK);
            polled.json()
        })
        .collect();
    let statuses: Vec<_> = seen.iter().map(|b| b["status"].clone()).collect();
    assert_eq!(
        statuses,
        [
            json!("validating"),
            json!("in_progress"),
            json!("finalizing"),
            json!("completed")
        ]
    );
    let completed = &seen[3];
    assert_eq!(
        completed["request_counts"],
        json!({"total": 5, "completed": 5, "failed": 0})
    );
    let output_file = completed["output_file_id"]
        .as_str()
        .expect("an output file");
    assert!(output_file.starts_with("file-"), "{output_file}");

    let content = api
        .send(key(api.get(&format!("/v1/files/{output_file}/content"))))
        .await;
    assert_eq!(content.status, StatusCode::OK);
    assert_eq!(content.header("content-type"), "application/octet-stream");
    let lines: Vec<Value> = content
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 5, "{}", content.text());
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["custom_id"], format!("request-{}", i + 1));
        assert_eq!(line["response"]["status_code"], 200);
        assert!(line["response"]["request_id"].is_string());
        assert_eq!(line["response"]["body"]["object"], "chat.completion");
        assert_eq!(line["error"], Value::Null);
    }

    // A batch whose input file does not exist is refused at once; one asking to fail fails.
    let missing = json!({"input_file_id": "file-missing", "endpoint": "/v1/embeddings", "completion_window": "24h"});
    let refused = api
        .send(key(with_json(api.post("/v1/batches"), &missing)))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let error = &refused.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], "input_file_id");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("file-missing"))
    );
    assert!(error.as_object().is_some_and(|e| e.contains_key("code")));
    let bad_window =
        json!({"input_file_id": "f", "endpoint": "/v1/embeddings", "completion_window": "1h"});
    let refused = api
        .send(key(with_json(api.post("/v1/batches"), &bad_window)))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["error"]["param"], "completion_window");

    let failing = json!({
        "input_file_id": "file-abc",
        "endpoint": "/v1/embeddings",
        "completion_window": "24h",
        "metadata": {"fail": "line 1: the model does not exist"},
    });
    let id = api
        .submitted(key(with_json(api.post("/v1/batches"), &failing)), "id")
        .await;
    let last = api
        .last_poll(4, || key(api.get(&format!("/v1/batches/{id}"))))
        .await
        .json();
    assert_eq!(last["status"], "failed");
    assert_eq!(
        last["errors"]["data"][0]["message"],
        "line 1: the model does not exist"
    );
    assert_eq!(last["errors"]["data"][0]["line"], 1);
    assert_eq!(last["output_file_id"], Value::Null);
    let no_output = api
        .send(key(api.get(&format!("/v1/files/file-{}/content", &id[6..]))))
        .await;
    assert_eq!(no_output.status, StatusCode::NOT_FOUND);
    assert_eq!(no_output.json()["error"]["type"], "invalid_request_error");
    api.wait_for_stats(&[("jobs", 2), ("done", 2), ("unauthorized", 1)])
        .await;
}

#[tokio::test]
async fn a_revai_job_is_transcribed_and_its_transcript_fetched_as_text_or_json() {
    let hooks = receiver().await;
    let api = start(Config {
        webhooks: true,
        ..config(Shape::Revai)
    })
    .await;
    let key = |request: reqwest::RequestBuilder| request.header("authorization", "Bearer mock-key");
    let job = json!({
        "source_config": {"url": "https://example.com/media/talk.mp3?sig=1"},
        "notification_config": {"url": format!("{}/rev", hooks.base)},
        "metadata": "m-1",
    });

    let anonymous = api
        .send(with_json(api.post("/speechtotext/v1/jobs"), &job))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.header("content-type"), "application/problem+json");
    assert_eq!(anonymous.json()["status"], 401);

    let submitted = api
        .send(key(with_json(api.post("/speechtotext/v1/jobs"), &job)))
        .await;
    assert_eq!(submitted.status, StatusCode::OK);
    let submitted = submitted.json();
    assert_eq!(submitted["status"], "in_progress");
    assert_eq!(submitted["metadata"], "m-1");
    let id = submitted["id"].as_str().expect("an id");
    let job_url = format!("/speechtotext/v1/jobs/{id}");
    let transcript_url = format!("{job_url}/transcript");

    let early = api
        .send(key(api.get(&transcript_url)).header("accept", "text/plain"))
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert_eq!(early.header("content-type"), "application/problem+json");
    let early = early.json();
    assert_eq!(early["status"], 409);
    assert_eq!(early["current_value"], "in_progress");
    assert!(
        early["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/invalid-job-state"))
    );
    assert!(
        early["title"].is_string() && early["detail"].is_string(),
        "{early}"
    );

    let statuses: Vec<_> = api
        .polls(3, || key(api.get(&job_url)))
        .await
        .iter()
        .map(|polled| polled.json()["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [
            json!("in_progress"),
            json!("in_progress"),
            json!("transcribed")
        ]
    );

    let text = api
        .send(key(api.get(&transcript_url)).header("accept", "text/plain"))
        .await;
    let transcript = api
        .send(
            key(api.get(&transcript_url))
                .header("accept", "application/vnd.rev.transcript.v1.0+json"),
        )
        .await;
    assert_eq!(text.status, StatusCode::OK);
    assert!(text.header("content-type").starts_with("text/plain"));
    assert_eq!(
        transcript.header("content-type"),
        "application/vnd.rev.transcript.v1.0+json"
    );
    let spoken: String = transcript.json()["monologues"][0]["elements"]
        .as_array()
        .expect("elements")
        .iter()
        .map(|e| e["value"].as_str().expect("a value"))
        .collect();
    assert_eq!(
        spoken,
        format!("This is the transcript of talk.mp3 for job {id}.")
    );
    assert_eq!(text.text(), format!("Speaker 0    00:00:00    {spoken}\n"));
    let again = api
        .send(key(api.get(&transcript_url)).header("accept", "text/plain"))
        .await;
    assert_eq!(again.bytes, text.bytes, "deterministic");
    let refused = api
        .send(key(api.get(&transcript_url)).header("accept", "application/xml"))
        .await;
    assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);

    let posted = hooks.body_at("/rev").await;
    assert_eq!(posted["job"]["id"], id);
    assert_eq!(posted["job"]["status"], "transcribed");

    // A failed job: its failure and detail; its transcript stays out of reach.
    let failing = json!({"source_config": {"url": "https://example.com/a.mp3"}, "metadata": "fail: unsupported codec"});
    let id = api
        .submitted(
            key(with_json(api.post("/speechtotext/v1/jobs"), &failing)),
            "id",
        )
        .await;
    let last = api
        .last_poll(3, || key(api.get(&format!("/speechtotext/v1/jobs/{id}"))))
        .await
        .json();
    assert_eq!(last["status"], "failed");
    assert_eq!(last["failure_detail"], "unsupported codec");
    assert!(last["failure"].is_string());
    let out_of_reach = api
        .send(key(
            api.get(&format!("/speechtotext/v1/jobs/{id}/transcript"))
        ))
        .await;
    assert_eq!(out_of_reach.status, StatusCode::CONFLICT);
    assert_eq!(out_of_reach.json()["current_value"], "failed");

    let no_source = api
        .send(key(with_json(
            api.post("/speechtotext/v1/jobs"),
            &json!({"metadata": "x"}),
        )))
        .await;
    assert_eq!(no_source.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_source.json()["status"], 400);
    let unknown = api.send(key(api.get("/speechtotext/v1/jobs/nope"))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.header("content-type"), "application/problem+json");
    api.wait_for_stats(&[("jobs", 2), ("done", 2), ("webhooks_sent", 1)])
        .await;
}
