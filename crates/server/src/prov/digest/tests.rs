use super::*;

const NOW: u64 = 1_790_000_000;
const URI: &str = "/prov/yealink/001565000001.cfg";
const USER: &str = "001565000001";
const PASSWORD: &str = "prov-pass-0001";

/// What a phone sends: the RFC 7616 §3.4.1 response for these values.
fn answer(nonce: &str, algorithm: Algorithm, nc: u32, realm: &str, uri: &str, password: &str) -> String {
    let ha1 = algorithm.hex(&[USER.as_bytes(), realm.as_bytes(), password.as_bytes()]);
    let ha2 = algorithm.hex(&[b"GET", uri.as_bytes()]);
    let nc = format!("{nc:08x}");
    let response = algorithm.hex(&[
        ha1.as_bytes(),
        nonce.as_bytes(),
        nc.as_bytes(),
        b"0a4f113b",
        b"auth",
        ha2.as_bytes(),
    ]);
    format!(
        "Digest username=\"{USER}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         algorithm={}, qop=auth, nc={nc}, cnonce=\"0a4f113b\", response=\"{response}\"",
        algorithm.name()
    )
}

fn verify(auth: &DigestAuth, header: &str, now: u64) -> Verdict {
    match Credentials::parse(header) {
        Ok(credentials) => auth.verify(&credentials, "GET", URI, Some(PASSWORD), now),
        Err(why) => Verdict::Refused(why),
    }
}

#[test]
fn both_algorithms_authenticate_and_a_replayed_count_is_refused() {
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        let auth = DigestAuth::new();
        let nonce = auth.nonce(NOW);
        let first = answer(&nonce, algorithm, 1, REALM, URI, PASSWORD);
        assert_eq!(verify(&auth, &first, NOW + 1), Verdict::Authenticated, "{algorithm:?}");
        assert!(matches!(verify(&auth, &first, NOW + 2), Verdict::Refused(_)), "replay of {algorithm:?}");
        let second = answer(&nonce, algorithm, 2, REALM, URI, PASSWORD);
        assert_eq!(verify(&auth, &second, NOW + 3), Verdict::Authenticated);
        let back = answer(&nonce, algorithm, 1, REALM, URI, PASSWORD);
        assert!(matches!(verify(&auth, &back, NOW + 4), Verdict::Refused(_)), "an older count");
    }
}

#[test]
fn an_expired_nonce_is_stale_only_when_the_password_is_right() {
    let auth = DigestAuth::new();
    let nonce = auth.nonce(NOW);
    let later = NOW + NONCE_LIFETIME.as_secs();
    assert_eq!(
        verify(&auth, &answer(&nonce, Algorithm::Md5, 1, REALM, URI, PASSWORD), later),
        Verdict::Stale
    );
    let wrong = answer(&nonce, Algorithm::Md5, 1, REALM, URI, "guess");
    assert!(matches!(verify(&auth, &wrong, later), Verdict::Refused(_)));
}

#[test]
fn wrong_password_realm_uri_or_foreign_nonce_is_refused() {
    let auth = DigestAuth::new();
    let nonce = auth.nonce(NOW);
    let other_server = DigestAuth::new().nonce(NOW);
    let cases = [
        ("wrong password", answer(&nonce, Algorithm::Sha256, 1, REALM, URI, "guess")),
        ("wrong realm", answer(&nonce, Algorithm::Sha256, 1, "other", URI, PASSWORD)),
        (
            "another file",
            answer(&nonce, Algorithm::Sha256, 1, REALM, "/prov/yealink/001565000002.cfg", PASSWORD),
        ),
        ("another server's nonce", answer(&other_server, Algorithm::Sha256, 1, REALM, URI, "guess")),
    ];
    for (name, header) in cases {
        assert!(matches!(verify(&auth, &header, NOW), Verdict::Refused(_)), "{name}");
    }
    // The right password with a nonce from before a restart (or made up): told to retry.
    for nonce in [other_server.as_str(), "bm90LWEtbm9uY2U"] {
        let header = answer(nonce, Algorithm::Sha256, 1, REALM, URI, PASSWORD);
        assert_eq!(verify(&auth, &header, NOW), Verdict::Stale, "{nonce}");
    }
    let credentials = Credentials::parse(&answer(&nonce, Algorithm::Md5, 1, REALM, URI, PASSWORD))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(auth.verify(&credentials, "GET", URI, None, NOW), Verdict::Refused(_)),
        "a phone without a password"
    );
}

#[test]
fn malformed_headers_are_refused_with_a_reason() {
    let auth = DigestAuth::new();
    let good = answer(&auth.nonce(NOW), Algorithm::Md5, 1, REALM, URI, PASSWORD);
    let long = format!("{good}, x=\"{}\"", "a".repeat(MAX_HEADER));
    let cases = [
        "",
        "Digest",
        "Basic MDAxNTY1MDAwMDAxOnBhc3M=",
        "Digest username=",
        "Digest username=\"unterminated",
        "Digest =x",
        "Digest a=1, a=2",
        &good.replace("qop=auth", "qop=auth-int"),
        &good.replace("algorithm=MD5", "algorithm=MD5-sess"),
        &good.replace(", nc=00000001", ", nc=1"),
        &good.replace(", nc=00000001", ""),
        &good.replace("cnonce=\"0a4f113b\"", "cnonce=\"\""),
        &format!("{good}, userhash=true"),
        &long,
        "Digest username=\"a\u{7}b\"",
    ];
    for header in cases {
        assert!(Credentials::parse(header).is_err(), "accepted: {header:.80}");
    }
    assert!(Credentials::parse(&good).is_ok());
    assert!(
        Credentials::parse(&good.replacen("Digest", "digest", 1)).is_ok(),
        "the scheme is case-insensitive"
    );
}

#[test]
fn the_challenge_offers_both_algorithms_with_one_nonce() {
    let auth = DigestAuth::new();
    let [first, second] = auth.challenge(NOW, true);
    let (first, second) = (first.to_str().unwrap_or_default(), second.to_str().unwrap_or_default());
    assert!(first.contains("algorithm=SHA-256") && second.contains("algorithm=MD5"), "{first} / {second}");
    assert!(
        first.contains("qop=\"auth\"")
            && first.contains("realm=\"switchback\"")
            && first.ends_with("stale=true")
    );
    let nonce = |v: &str| v.split("nonce=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_owned);
    assert_eq!(nonce(first), nonce(second));
}
