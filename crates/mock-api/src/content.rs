//! The bytes the mock makes up: a hosted file's (any name, any length), and a result made from
//! an uploaded file (an upscaled image, a dubbed track). Each is a pure function of what it is
//! made from, so that a test computes what it must receive, and a result proves which bytes
//! were uploaded: its header names their length and fingerprint, and the bytes follow reversed.

/// `n` bytes of the hosted file `name`: the output of a small generator (xorshift) seeded by
/// the name's fingerprint, so that two names differ from their first bytes.
pub fn file(name: &str, n: usize) -> Vec<u8> {
    let mut state = crate::fnv1a(name.as_bytes()) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_be_bytes()[0]
        })
        .collect()
}

/// A result made from `source` and `salt` (a prompt, a language): the line
/// `"{tag} {len} {fnv1a(source):016x} {fnv1a(salt):016x}\n"`, then `source`'s bytes in reverse
/// order.
pub fn derived(tag: &str, source: &[u8], salt: &str) -> Vec<u8> {
    let header = format!(
        "{tag} {} {:016x} {:016x}\n",
        source.len(),
        crate::fnv1a(source),
        crate::fnv1a(salt.as_bytes())
    );
    let mut bytes = header.into_bytes();
    bytes.extend(source.iter().rev());
    bytes
}

/// The content type of a file named `name`, by its extension.
pub fn content_type(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "pdf" => "application/pdf",
        "json" => "application/json",
        "jsonl" => "application/jsonl",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_a_pure_function_of_its_name_and_length() {
        assert_eq!(file("a.png", 100), file("a.png", 100));
        assert_eq!(file("a.png", 10), file("a.png", 100)[..10]);
        assert_ne!(file("a.png", 8), file("b.png", 8));
        assert_eq!(file("x", 0), Vec::<u8>::new());
    }

    #[test]
    fn a_derived_result_names_its_source_and_holds_it_reversed() {
        let result = derived("upscaled", b"abc", "a cat");

        let header = format!(
            "upscaled 3 {:016x} {:016x}\n",
            crate::fnv1a(b"abc"),
            crate::fnv1a(b"a cat")
        );
        assert_eq!(result, [header.as_bytes(), b"cba"].concat());
        assert_ne!(result, derived("upscaled", b"abc", "a dog"));
    }

    #[test]
    fn content_types_go_by_extension() {
        assert_eq!(content_type("x.PNG"), "image/png");
        assert_eq!(content_type("a/b.mp3"), "audio/mpeg");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
