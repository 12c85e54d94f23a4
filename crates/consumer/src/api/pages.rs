//! Answers in pages (AWS Textract's `NextToken`, ...): the call is repeated with the token of
//! the next page until an answer has none, and each page's array at the profile's `merge`
//! pointer is added to the first page's, so the task's result is the whole answer in one piece.

use serde_json::Value;

use super::profile::Pages;

/// The token of the page after `answer`: a non-empty string (or a number) at `next`.
pub fn next_token(pages: &Pages, answer: &Value) -> Option<String> {
    match answer.pointer(&pages.next)? {
        Value::String(token) if !token.is_empty() => Some(token.clone()),
        Value::Number(token) => Some(token.to_string()),
        _ => None,
    }
}

/// Adds the array at `merge` in `page` to the one in `whole` (a page without one adds nothing),
/// and takes `page`'s token of the next page, if any, in place of the one `whole` held.
///
/// # Errors
/// The words for a `merge` value that is not an array, in `whole` or in `page`.
pub fn merge(pages: &Pages, whole: &mut Value, mut page: Value) -> Result<(), String> {
    let not_an_array = || format!("the value at {} is not an array", pages.merge);
    let more = match page.pointer_mut(&pages.merge).map(Value::take) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(not_an_array()),
    };
    match whole.pointer_mut(&pages.merge) {
        Some(Value::Array(items)) => items.extend(more),
        _ => return Err(not_an_array()),
    }
    let token = page.pointer(&pages.next).cloned().unwrap_or(Value::Null);
    if let Some(slot) = whole.pointer_mut(&pages.next) {
        *slot = token;
    }
    Ok(())
}

/// `whole` without its token of a next page: the last page had none.
pub fn finished(pages: &Pages, mut whole: Value) -> Value {
    let (parent, key) = pages.next.rsplit_once('/').unwrap_or(("", &pages.next));
    let container = if parent.is_empty() {
        Some(&mut whole)
    } else {
        whole.pointer_mut(parent)
    };
    if let Some(Value::Object(members)) = container {
        members.remove(key);
    }
    whole
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::profile::PagePlace;

    fn textract() -> Pages {
        Pages {
            next: "/NextToken".into(),
            param: "NextToken".into(),
            place: PagePlace::Body,
            merge: "/Blocks".into(),
            max: 10,
        }
    }

    #[test]
    fn pages_add_their_arrays_in_order_and_the_whole_keeps_no_token() {
        let pages = textract();
        let mut whole = json!({"JobStatus": "SUCCEEDED", "Blocks": [1, 2], "NextToken": "a"});
        assert_eq!(next_token(&pages, &whole).as_deref(), Some("a"));
        merge(&pages, &mut whole, json!({"Blocks": [3], "NextToken": "b"})).unwrap();
        assert_eq!(next_token(&pages, &whole).as_deref(), Some("b"));
        merge(&pages, &mut whole, json!({"Blocks": [4, 5]})).unwrap();
        assert_eq!(next_token(&pages, &whole), None);
        assert_eq!(
            finished(&pages, whole),
            json!({"JobStatus": "SUCCEEDED", "Blocks": [1, 2, 3, 4, 5]})
        );
        assert!(merge(&pages, &mut json!({"Blocks": 1}), json!({"Blocks": [2]})).is_err());
        assert_eq!(next_token(&pages, &json!({"NextToken": ""})), None);
    }
}
