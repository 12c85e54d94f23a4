//! What every provider shape does when the call goes wrong, over HTTPS: an injected failure
//! answers in the provider's own error body with its `Retry-After`, and a submit whose answer
//! is cut off still makes its job.

mod providers;
mod support;

use axum::http::StatusCode;
use mock_api::{Config, Shape};
use providers::{Api, Field, config, start, textract, with_form, with_json};
use serde_json::{Value, json};

/// A submit of each new shape, with its credential, the body it wants: its status is what
/// matters here, not its job.
fn any_submit(api: &Api, shape: Shape) -> reqwest::RequestBuilder {
    let json = |path: &str, auth: &str, body: Value| {
        with_json(api.post(path), &body).header("authorization", auth.to_owned())
    };
    let image = [
        Field::File("image", "a.png", "image/png", b"png"),
        Field::Text("prompt", "p"),
    ];
    match shape {
        Shape::Fal => json("/fal-ai/flux", "Key mock-key", json!({"prompt": "p"})),
        Shape::OpenaiBatch => json(
            "/v1/batches",
            "Bearer mock-key",
            json!({"input_file_id": "f", "endpoint": "/v1/embeddings", "completion_window": "24h"}),
        ),
        Shape::Revai => json(
            "/speechtotext/v1/jobs",
            "Bearer mock-key",
            json!({"source_config": {"url": "https://x/a.mp3"}}),
        ),
        Shape::StabilityUpscale => {
            with_form(api.post("/v2beta/stable-image/upscale/creative"), &image)
                .header("authorization", "Bearer mock-key")
        }
        Shape::ElevenlabsDubbing => with_form(
            api.post("/v1/dubbing"),
            &[
                Field::Text("source_url", "https://x/a.mp4"),
                Field::Text("target_lang", "es"),
            ],
        )
        .header("xi-api-key", "mock-key"),
        Shape::Textract => textract(
            api,
            "StartDocumentTextDetection",
            &json!({"DocumentLocation": {"S3Object": {"Bucket": "b", "Name": "n"}}}),
        ),
        Shape::Deepgram => json(
            "/v1/listen?callback=http://127.0.0.1:9/x",
            "Token mock-key",
            json!({"url": "https://x/a.wav"}),
        ),
        other => unreachable!("{other:?} has tests of its own"),
    }
}

const NEW_SHAPES: [Shape; 7] = [
    Shape::Fal,
    Shape::OpenaiBatch,
    Shape::Revai,
    Shape::StabilityUpscale,
    Shape::ElevenlabsDubbing,
    Shape::Textract,
    Shape::Deepgram,
];

#[tokio::test]
async fn an_injected_failure_answers_in_each_providers_error_body_with_its_retry_after() {
    for shape in NEW_SHAPES {
        let api = start(Config {
            failure_rate: 1.0,
            failure_status: 503,
            retry_after_secs: Some(7),
            ..config(shape)
        })
        .await;

        let failed = api.send(any_submit(&api, shape)).await;

        assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{shape:?}");
        assert_eq!(failed.header("retry-after"), "7", "{shape:?}");
        let body = failed.json();
        let field = match shape {
            Shape::Fal => "/detail",
            Shape::OpenaiBatch => "/error/type",
            Shape::Revai => "/title",
            Shape::StabilityUpscale => "/name",
            Shape::ElevenlabsDubbing => "/detail/status",
            Shape::Textract => "/__type",
            _ => "/err_code",
        };
        assert!(
            body.pointer(field).is_some_and(Value::is_string),
            "{shape:?}: {body}"
        );
        api.wait_for_stats(&[("failures", 1), ("jobs", 0)]).await;
    }
}

#[tokio::test]
async fn a_dropped_submit_answer_still_makes_the_job_of_every_new_shape() {
    for shape in NEW_SHAPES {
        let api = start(Config {
            drop_submit_answers: 1,
            ..config(shape)
        })
        .await;

        let dropped = any_submit(&api, shape).send().await;
        let cut = match dropped {
            Err(_) => true,
            Ok(answer) => answer.bytes().await.is_err(),
        };
        let answered = api.send(any_submit(&api, shape)).await;

        assert!(cut, "{shape:?}: the first answer is cut off");
        assert_eq!(answered.status, StatusCode::OK, "{shape:?}");
        api.wait_for_stats(&[("jobs", 2), ("dropped_answers", 1)])
            .await;
        api.send(api.post("/reset")).await;
        api.wait_for_stats(&[("jobs", 0), ("calls", 0), ("dropped_answers", 0)])
            .await;
    }
}
