//! Templates: parsing, rendering, and what they refuse.
use serde_json::json;

use super::*;

fn values<'a>(payload: Option<&'a Value>, id: Option<&'a str>) -> Values<'a> {
    Values {
        name: "report 42/é",
        id,
        payload,
        webhook_url: None,
        submit: None,
        done: None,
    }
}

#[test]
fn a_body_string_that_is_one_placeholder_becomes_the_value_and_a_longer_one_its_text() {
    let payload = json!({"prompt": "a cat", "size": {"w": 512}, "tags": ["x", "y"]});
    let body = BodyTemplate::parse(&json!({
        "input": "{{payload}}",
        "ref": "{{name}}",
        "prompt": "{{ payload.prompt }}",
        "width": "{{payload.size.w}}",
        "first_tag": "{{payload.tags.0}}",
        "label": "job {{name}} at {{payload.size.w}} px",
        "fixed": [1, "two"],
    }))
    .unwrap();

    let rendered = body.render(&values(Some(&payload), None)).unwrap();

    assert_eq!(
        rendered,
        json!({
            "input": payload,
            "ref": "report 42/é",
            "prompt": "a cat",
            "width": 512,
            "first_tag": "x",
            "label": "job report 42/é at 512 px",
            "fixed": [1, "two"],
        })
    );
}

#[test]
fn a_missing_payload_is_null_but_a_missing_field_is_an_error() {
    let body = BodyTemplate::parse(&json!({"input": "{{payload}}"})).unwrap();
    assert_eq!(
        body.render(&values(None, None)).unwrap(),
        json!({"input": null})
    );
    let field = BodyTemplate::parse(&json!({"p": "{{payload.prompt.text}}"})).unwrap();
    assert_eq!(
        field.render(&values(Some(&json!({"prompt": "x"})), None)),
        Err(RenderError::MissingField("prompt.text".into()))
    );
    assert_eq!(
        field.render(&values(None, None)),
        Err(RenderError::MissingField("prompt.text".into()))
    );
}

#[test]
fn path_values_are_percent_encoded_except_slashes() {
    let path = Template::parse("/v1/jobs/{{id}}?ref={{name}}").unwrap();
    let rendered = path
        .render_path(&values(None, Some("operations/1 2?x#y")))
        .unwrap();
    assert_eq!(
        rendered,
        "/v1/jobs/operations/1%202%3Fx%23y?ref=report%2042/%C3%A9"
    );
}

#[test]
fn a_path_value_with_a_dot_segment_is_refused() {
    let path = Template::parse("/v1/jobs/{{id}}").unwrap();
    for id in ["..", "a/../b", ".", "a/./b", "../../admin"] {
        assert!(
            matches!(
                path.render_path(&values(None, Some(id))),
                Err(RenderError::DotSegment(_))
            ),
            "{id}"
        );
    }
    for id in ["a..b", "v1.2", ".hidden", "a/b"] {
        assert!(path.render_path(&values(None, Some(id))).is_ok(), "{id}");
    }
}

#[test]
fn unknown_or_unclosed_placeholders_are_refused_at_parse_time() {
    assert_eq!(
        Template::parse("/x/{{nam}}"),
        Err(TemplateError::Unknown("nam".into()))
    );
    assert_eq!(
        Template::parse("/x/{{payload.}}"),
        Err(TemplateError::Unknown("payload.".into()))
    );
    assert_eq!(Template::parse("/x/{{id"), Err(TemplateError::Unclosed));
    assert!(BodyTemplate::parse(&json!({"a": ["{{token}}"]})).is_err());
    assert!(
        Template::parse("/plain/path")
            .unwrap()
            .render_text(&values(None, None))
            .is_ok()
    );
}

#[test]
fn templates_know_whether_they_read_the_id() {
    assert!(Template::parse("/jobs/{{id}}").unwrap().uses_id());
    assert!(!Template::parse("/jobs/{{name}}").unwrap().uses_id());
    assert!(
        BodyTemplate::parse(&json!({"a": [{"b": "x {{id}}"}]}))
            .unwrap()
            .uses_id()
    );
    assert!(
        !BodyTemplate::parse(&json!({"a": "{{payload}}"}))
            .unwrap()
            .uses_id()
    );
}

#[test]
fn a_template_knows_whether_the_id_is_all_it_reads() {
    assert!(Template::parse("{{id}}").unwrap().reads_only_id());
    assert!(
        Template::parse("https://x/{{id}}?v=1")
            .unwrap()
            .reads_only_id()
    );
    assert!(
        !Template::parse("{{id}}{{payload.x}}")
            .unwrap()
            .reads_only_id()
    );
    assert!(
        !Template::parse("https://x/{{name}}")
            .unwrap()
            .reads_only_id()
    );
}

#[test]
fn id_without_one_is_an_error() {
    let path = Template::parse("/jobs/{{id}}").unwrap();
    assert_eq!(
        path.render_path(&values(None, None)),
        Err(RenderError::NoId)
    );
}
