//! Providers that take a file, over HTTPS as a consumer's profile meets them: a Stability
//! upscale and an ElevenLabs dub, each a multipart submit (a file uploaded, or a URL the
//! provider downloads) whose result is made from the uploaded bytes, with the credential check
//! and the error bodies.

mod providers;
mod support;

use axum::http::StatusCode;
use mock_api::{Config, Shape};
use providers::{Answer, Field, config, start, with_form, with_json};
use serde_json::json;

/// Bytes that look like an image and hold what a careless multipart reader trips on: line
/// breaks, dashes, zeros.
fn image_bytes(n: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..n).map(|i| match i % 97 {
        0 => b'\r',
        1 => b'\n',
        2 | 3 => b'-',
        _ => u8::try_from(i * 31 % 256).expect("a byte"),
    }));
    bytes
}

#[tokio::test]
async fn a_stability_upscale_takes_a_multipart_image_and_answers_bytes_made_from_it() {
    let api = start(Config {
        max_upload_bytes: 16 << 10,
        ..config(Shape::StabilityUpscale)
    })
    .await;
    let key = |request: reqwest::RequestBuilder| request.header("authorization", "Bearer mock-key");
    let image = image_bytes(5000);
    let path = "/v2beta/stable-image/upscale/creative";
    let fields = [
        Field::File("image", "cat.png", "image/png", &image),
        Field::Text("prompt", "a cat, sharper"),
        Field::Text("output_format", "webp"),
        Field::Text("seed", "17"),
    ];

    let anonymous = api.send(with_form(api.post(path), &fields)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["name"], "unauthorized");

    let submitted = api.send(key(with_form(api.post(path), &fields))).await;
    assert_eq!(submitted.status, StatusCode::OK);
    let id = submitted.json()["id"].as_str().expect("an id").to_owned();
    let result = format!("/v2beta/results/{id}");

    let running = api
        .send(key(api.get(&result)).header("accept", "image/*"))
        .await;
    assert_eq!(running.status, StatusCode::ACCEPTED);
    assert_eq!(running.json(), json!({"id": id, "status": "in-progress"}));
    api.send(key(api.get(&result)).header("accept", "image/*"))
        .await;
    let done = api
        .send(key(api.get(&result)).header("accept", "image/*"))
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.header("content-type"), "image/webp");
    assert_eq!(done.header("finish-reason"), "SUCCESS");
    assert_eq!(done.header("seed"), "17");
    assert_eq!(
        done.bytes,
        mock_api::shapes::upscaled(&image, "a cat, sharper")
    );
    let header = format!(
        "upscaled {} {:016x} {:016x}\n",
        image.len(),
        mock_api::fnv1a(&image),
        mock_api::fnv1a(b"a cat, sharper")
    );
    let (head, tail) = done.bytes.split_at(header.len());
    assert_eq!(head, header.as_bytes());
    assert!(tail.iter().eq(image.iter().rev()), "the upload, reversed");

    let as_json = api
        .send(key(api.get(&result)).header("accept", "application/json"))
        .await;
    assert_eq!(as_json.status, StatusCode::OK);
    let as_json = as_json.json();
    assert_eq!(as_json["finish_reason"], "SUCCESS");
    assert_eq!(as_json["seed"], 17);
    let decoded = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        as_json["image"].as_str().expect("base64"),
    )
    .expect("base64");
    assert_eq!(decoded, done.bytes);

    let no_prompt = api
        .send(key(with_form(
            api.post(path),
            &[Field::File("image", "a.png", "image/png", &image)],
        )))
        .await;
    assert_eq!(no_prompt.status, StatusCode::BAD_REQUEST);
    let no_prompt = no_prompt.json();
    assert_eq!(no_prompt["name"], "bad_request");
    assert_eq!(no_prompt["errors"], json!(["prompt: required"]));
    let too_large = image_bytes(20 << 10);
    let refused = api
        .send(key(with_form(
            api.post(path),
            &[
                Field::File("image", "a.png", "image/png", &too_large),
                Field::Text("prompt", "p"),
            ],
        )))
        .await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(refused.json()["name"], "payload_too_large");
    let not_a_form = api
        .send(key(with_json(api.post(path), &json!({"prompt": "p"}))))
        .await;
    assert_eq!(not_a_form.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_a_form.json()["name"], "bad_request");

    let failing = [
        Field::File("image", "a.png", "image/png", b"tiny"),
        Field::Text("prompt", "fail: the image was flagged"),
    ];
    let id = api
        .submitted(key(with_form(api.post(path), &failing)), "id")
        .await;
    let last = api
        .last_poll(3, || key(api.get(&format!("/v2beta/results/{id}"))))
        .await;
    assert_eq!(last.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(last.json()["errors"], json!(["the image was flagged"]));
    let unknown = api.send(key(api.get("/v2beta/results/nope"))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["name"], "not_found");
    api.wait_for_stats(&[("jobs", 2), ("done", 2), ("unauthorized", 1)])
        .await;
}

#[tokio::test]
async fn an_elevenlabs_dub_of_a_downloaded_file_gives_audio_made_from_it_per_language() {
    let api = start(config(Shape::ElevenlabsDubbing)).await;
    let key = |request: reqwest::RequestBuilder| request.header("xi-api-key", "mock-key");
    let media = api.send(api.get("/files/talk.mp3?bytes=20000")).await;
    assert_eq!(media.status, StatusCode::OK);
    assert_eq!(media.header("content-type"), "audio/mpeg");
    assert_eq!(media.bytes.len(), 20_000);
    let fields = [
        Field::File("file", "talk.mp3", "audio/mpeg", &media.bytes),
        Field::Text("target_lang", "es"),
        Field::Text("name", "talk"),
    ];

    let anonymous = api.send(with_form(api.post("/v1/dubbing"), &fields)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["detail"]["status"], "invalid_api_key");

    let submitted = api
        .send(key(with_form(api.post("/v1/dubbing"), &fields)))
        .await;
    assert_eq!(submitted.status, StatusCode::OK);
    let submitted = submitted.json();
    let id = submitted["dubbing_id"].as_str().expect("an id").to_owned();
    assert!(
        submitted["expected_duration_sec"].is_number(),
        "{submitted}"
    );

    let early = api
        .send(key(api.get(&format!("/v1/dubbing/{id}/audio/es"))))
        .await;
    assert_eq!(early.status, StatusCode::TOO_EARLY);
    assert!(early.json()["detail"]["message"].is_string());
    let seen: Vec<_> = api
        .polls(3, || key(api.get(&format!("/v1/dubbing/{id}"))))
        .await
        .iter()
        .map(Answer::json)
        .collect();
    assert_eq!(seen[0]["status"], "dubbing");
    assert_eq!(seen[2]["status"], "dubbed");
    assert_eq!(seen[2]["target_languages"], json!(["es"]));
    assert_eq!(seen[2]["name"], "talk");

    let audio = api
        .send(key(api.get(&format!("/v1/dubbing/{id}/audio/es"))))
        .await;
    assert_eq!(audio.status, StatusCode::OK);
    assert_eq!(audio.header("content-type"), "audio/mpeg");
    assert_eq!(audio.bytes, mock_api::shapes::dubbed(&media.bytes, "es"));
    assert!(
        audio
            .bytes
            .ends_with(&media.bytes.iter().rev().copied().collect::<Vec<_>>())
    );
    let other = api
        .send(key(api.get(&format!("/v1/dubbing/{id}/audio/fr"))))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(other.json()["detail"]["status"].is_string());

    // A source URL instead of a file: the dub is made from the URL.
    let url = "https://example.com/clip.mp4";
    let by_url = [
        Field::Text("source_url", url),
        Field::Text("target_lang", "de"),
    ];
    let id = api
        .submitted(
            key(with_form(api.post("/v1/dubbing"), &by_url)),
            "dubbing_id",
        )
        .await;
    api.polls(3, || key(api.get(&format!("/v1/dubbing/{id}"))))
        .await;
    let audio = api
        .send(key(api.get(&format!("/v1/dubbing/{id}/audio/de"))))
        .await;
    assert_eq!(audio.bytes, mock_api::shapes::dubbed(url.as_bytes(), "de"));

    let no_lang = api
        .send(key(with_form(
            api.post("/v1/dubbing"),
            &[Field::Text("source_url", url)],
        )))
        .await;
    assert_eq!(no_lang.status, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = &no_lang.json()["detail"];
    assert_eq!(detail["status"], "invalid_parameters");
    assert!(
        detail["message"]
            .as_str()
            .is_some_and(|m| m.contains("target_lang"))
    );
    let no_source = api
        .send(key(with_form(
            api.post("/v1/dubbing"),
            &[Field::Text("target_lang", "es")],
        )))
        .await;
    assert_eq!(no_source.status, StatusCode::UNPROCESSABLE_ENTITY);

    let failing = [
        Field::Text("source_url", url),
        Field::Text("target_lang", "es"),
        Field::Text("fail", "no speech found"),
    ];
    let id = api
        .submitted(
            key(with_form(api.post("/v1/dubbing"), &failing)),
            "dubbing_id",
        )
        .await;
    let last = api
        .last_poll(3, || key(api.get(&format!("/v1/dubbing/{id}"))))
        .await
        .json();
    assert_eq!(
        (&last["status"], &last["error"]),
        (&json!("failed"), &json!("no speech found"))
    );
    let unknown = api.send(key(api.get("/v1/dubbing/nope"))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.json()["detail"]["status"].is_string());
    api.wait_for_stats(&[("jobs", 3), ("done", 3), ("downloads", 1)])
        .await;
}
