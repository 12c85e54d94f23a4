//! The verifier held to AWS's published test vectors (the `aws-sig-v4-test-suite`: each case's
//! canonical request, string to sign and signature), and each of its refusals named. In a file
//! of their own because the vectors alone are longer than the verifier.

use axum::http::HeaderValue;

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const DATE: &str = "20150830T123600Z";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A case of AWS's test suite: the request (its path as it was before a client encoded it),
/// and the three stages it must come to.
struct Vector {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    /// Besides `Host` and `X-Amz-Date`, in order (a name may repeat).
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
    signed_headers: &'static str,
    canonical_request: &'static str,
    string_to_sign_hash: &'static str,
    signature: &'static str,
}

fn suite() -> Vec<Vector> {
    let plain = |name, method, path, query, creq, sts, signature| Vector {
        name,
        method,
        path,
        query,
        headers: &[],
        body: b"",
        signed_headers: "host;x-amz-date",
        canonical_request: creq,
        string_to_sign_hash: sts,
        signature,
    };
    vec![
        plain(
            "get-vanilla",
            "GET",
            "/",
            "",
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        plain(
            "post-vanilla",
            "POST",
            "/",
            "",
            "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        plain(
            "get-vanilla-query-order-key-case",
            "GET",
            "/",
            "Param2=value2&Param1=value1",
            "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        plain(
            "post-vanilla-query",
            "POST",
            "/",
            "Param1=value1",
            "POST\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        ),
        plain(
            "get-vanilla-query-unreserved",
            "GET",
            "/",
            "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        ),
        plain(
            // The query as a client sends it: the name percent-encoded.
            "get-vanilla-utf8-query",
            "GET",
            "/",
            "%E1%88%B4=bar",
            "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        ),
        plain(
            "get-utf8",
            "GET",
            "/\u{1234}",
            "",
            "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        ),
        plain(
            "get-space-unnormalized",
            "GET",
            "/example space/",
            "",
            "GET\n/example%20space/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
            "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        ),
        plain(
            "get-slashes-unnormalized",
            "GET",
            "//example//",
            "",
            "GET\n//example//\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "528ec3105ee1f34ab014bb0a1a45da0ed2742a4fea3555149e5b4d5d201eb240",
            "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5",
        ),
        Vector {
            name: "get-header-key-duplicate",
            headers: &[
                ("my-header1", "value2"),
                ("my-header1", "value2"),
                ("my-header1", "value1"),
            ],
            signed_headers: "host;my-header1;x-amz-date",
            canonical_request: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            string_to_sign_hash: "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
            signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
            ..plain("", "GET", "/", "", "", "", "")
        },
        Vector {
            name: "get-header-value-order",
            headers: &[
                ("my-header1", "value4"),
                ("my-header1", "value1"),
                ("my-header1", "value3"),
                ("my-header1", "value2"),
            ],
            signed_headers: "host;my-header1;x-amz-date",
            canonical_request: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            string_to_sign_hash: "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
            signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
            ..plain("", "GET", "/", "", "", "", "")
        },
        Vector {
            name: "get-header-value-trim",
            headers: &[("my-header1", " value1"), ("my-header2", " \"a   b   c\"")],
            signed_headers: "host;my-header1;my-header2;x-amz-date",
            canonical_request: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            string_to_sign_hash: "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            ..plain("", "GET", "/", "", "", "", "")
        },
        Vector {
            name: "post-x-www-form-urlencoded",
            headers: &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-length", "13"),
                (
                    "x-amz-content-sha256",
                    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                ),
            ],
            body: b"Param1=value1",
            signed_headers: "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
            canonical_request: "POST\n/\n\ncontent-length:13\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\nx-amz-date:20150830T123600Z\n\ncontent-length;content-type;host;x-amz-content-sha256;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            string_to_sign_hash: "b1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3d89d16cfb",
            signature: "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
            ..plain("", "POST", "/", "", "", "", "")
        },
    ]
}

fn verifier() -> Verifier {
    Verifier {
        access_key_id: "AKIDEXAMPLE".into(),
        secret: Secret(SECRET.into()),
        session_token: None,
        region: "us-east-1".into(),
        service: "service".into(),
    }
}

fn headers(vector: &Vector, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut add = |name: &'static str, value: &str| {
        headers.append(name, HeaderValue::from_str(value).expect("a header value"));
    };
    add("host", "example.amazonaws.com");
    add("x-amz-date", DATE);
    for &(name, value) in vector.headers {
        add(name, value);
    }
    add(
        "authorization",
        &format!(
            "{ALGORITHM} Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={}, Signature={signature}",
            vector.signed_headers
        ),
    );
    headers
}

fn request<'a>(vector: &'a Vector, headers: &'a HeaderMap) -> Signed<'a> {
    Signed {
        method: vector.method,
        path: vector.path,
        query: vector.query,
        headers,
        body: vector.body,
    }
}

fn at_suite_time() -> SystemTime {
    parse_amz_date(DATE).expect("the suite's date")
}

#[test]
fn every_test_vector_comes_to_its_canonical_request_string_to_sign_and_signature() {
    for vector in suite() {
        let headers = headers(&vector, vector.signature);
        let signed = request(&vector, &headers);
        let names: Vec<&str> = vector.signed_headers.split(';').collect();
        let payload_hash = hex(digest(&SHA256, vector.body).as_ref());
        let canonical = canonical_request(&signed, &names, &payload_hash);
        assert_eq!(canonical, vector.canonical_request, "{}", vector.name);
        let scope = "20150830/us-east-1/service/aws4_request";
        let to_sign = string_to_sign(DATE, scope, &canonical);
        assert_eq!(
            to_sign,
            format!(
                "{ALGORITHM}\n{DATE}\n{scope}\n{}",
                vector.string_to_sign_hash
            ),
            "{}",
            vector.name
        );

        assert_eq!(
            verifier().verify(&signed, at_suite_time()),
            Ok(()),
            "{}",
            vector.name
        );
    }
}

#[test]
fn a_signature_off_by_one_digit_or_by_another_secret_is_refused() {
    let vector = &suite()[0];
    let wrong = vector.signature.replace('5', "6");
    let headers = headers(vector, &wrong);
    assert_eq!(
        verifier().verify(&request(vector, &headers), at_suite_time()),
        Err(SigV4Error::Signature)
    );

    let headers = self::headers(vector, vector.signature);
    let other = Verifier {
        secret: Secret("another".into()),
        ..verifier()
    };
    assert_eq!(
        other.verify(&request(vector, &headers), at_suite_time()),
        Err(SigV4Error::Signature)
    );
}

#[test]
fn each_check_before_the_signature_names_what_failed() {
    let vector = &suite()[0];
    let headers = headers(vector, vector.signature);
    let signed = request(vector, &headers);
    let check = |verifier: Verifier, now| verifier.verify(&signed, now);
    let now = at_suite_time();

    let other_key = Verifier {
        access_key_id: "AKIDOTHER".into(),
        ..verifier()
    };
    assert_eq!(check(other_key, now), Err(SigV4Error::AccessKey));
    let other_region = Verifier {
        region: "eu-west-1".into(),
        ..verifier()
    };
    assert_eq!(check(other_region, now), Err(SigV4Error::Scope("region")));
    let other_service = Verifier {
        service: "textract".into(),
        ..verifier()
    };
    assert_eq!(check(other_service, now), Err(SigV4Error::Scope("service")));
    let later = now + MAX_SKEW + Duration::from_secs(1);
    assert_eq!(check(verifier(), later), Err(SigV4Error::Stale));
    let earlier = now - MAX_SKEW;
    assert_eq!(check(verifier(), earlier), Ok(()));
    let with_token = Verifier {
        session_token: Some(Secret("token".into())),
        ..verifier()
    };
    assert_eq!(check(with_token, now), Err(SigV4Error::SessionToken));
}

#[test]
fn a_body_that_is_not_the_one_hashed_or_an_unsigned_host_is_refused() {
    let vector = &suite()[12];
    assert_eq!(vector.name, "post-x-www-form-urlencoded");
    let headers = headers(vector, vector.signature);
    let tampered = Signed {
        body: b"Param1=value2",
        ..request(vector, &headers)
    };
    assert_eq!(
        verifier().verify(&tampered, at_suite_time()),
        Err(SigV4Error::PayloadHash)
    );

    let unsigned_host = Vector {
        signed_headers: "x-amz-date",
        ..plain_get()
    };
    let headers = self::headers(&unsigned_host, EMPTY_SHA256);
    assert_eq!(
        verifier().verify(&request(&unsigned_host, &headers), at_suite_time()),
        Err(SigV4Error::Unsigned("host"))
    );
}

fn plain_get() -> Vector {
    suite().swap_remove(0)
}

#[test]
fn a_header_that_is_not_sigv4_is_refused_for_what_it_lacks() {
    let parse = Authorization::parse;
    assert_eq!(parse("Bearer x"), Err(SigV4Error::Algorithm));
    assert_eq!(parse("AWS4-HMAC-SHA256X"), Err(SigV4Error::Algorithm));
    assert_eq!(
        parse("AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=00"),
        Err(SigV4Error::Malformed("Credential"))
    );
    assert_eq!(
        parse("AWS4-HMAC-SHA256 Credential=a/b/c/d/e, Signature=00"),
        Err(SigV4Error::Missing("SignedHeaders"))
    );
    assert_eq!(unhex("0g"), None);
    assert_eq!(unhex("0aF"), None);
    assert_eq!(unhex("0aFf"), Some(vec![10, 255]));
}

#[test]
fn dates_are_read_as_utc_and_nonsense_is_not_a_date() {
    let secs =
        |text| parse_amz_date(text).map(|t| t.duration_since(UNIX_EPOCH).expect("after").as_secs());
    assert_eq!(secs("19700101T000000Z"), Some(0));
    assert_eq!(secs("20150830T123600Z"), Some(1_440_938_160));
    assert_eq!(secs("20000301T000000Z"), Some(951_868_800));
    assert_eq!(secs("20240229T235959Z"), Some(1_709_251_199));
    assert_eq!(secs("2015-08-30T12:36Z"), None);
    assert_eq!(secs("20151330T123600Z"), None);
    assert_eq!(secs("2015083OT123600Z"), None);
    assert_eq!(secs("+0150830T123600Z"), None);
}

#[test]
fn a_path_is_encoded_once_more_segment_by_segment() {
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/a b/c%20d"), "/a%20b/c%2520d");
    assert_eq!(canonical_query("b=2&a=&a=1&c"), "a=&a=1&b=2&c=");
    assert_eq!(canonical_query("k=a+b%2Fc"), "k=a%2Bb%2Fc");
}
