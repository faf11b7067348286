//! Provisioning access control end to end, with the clients a provider would point at
//! it: `curl --digest` and Python's `requests` `HTTPDigestAuth` as phones (right, wrong,
//! replayed), device certificates made here with `curl --cert`, a scanner on its own
//! loopback address that gets blocked (one event, one alert) while a phone on another
//! address keeps fetching, and the `allow` networks.
//!
//! The sites are addresses where nothing listens: access control does not depend on
//! them, and a blind monitor moves nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use switchback_tests::lab::{Running, TestPhone};
use switchback_tests::peers::free_port;
use switchback_tests::receiver::Receiver;
use switchback_tests::switchback::{ConfigBuilder, SiteAddrs};
use switchback_tests::wait::until;
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");
const TOKEN: &str = "provisioning-test-token";

fn offline() -> ConfigBuilder {
    let site = || SiteAddrs::offline().unwrap();
    ConfigBuilder::new(site(), site()).admin_token(TOKEN)
}

fn phones() -> Vec<TestPhone> {
    vec![
        TestPhone::new("0015651234a1", "yealink", 1).with_prov_password("prov-pass-0001"),
        TestPhone::new("c8d719000104", "linksys", 4).with_prov_password("prov-pass-0004"),
        // In the inventory, but without a provisioning password: it cannot fetch under digest.
        TestPhone::new("0015651234a2", "yealink", 2),
    ]
}

/// `curl` with `args`; answers (HTTP status, body). Status 0: no HTTP answer at all.
async fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl runs (apt-get install curl)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Python's `requests` with `HTTPDigestAuth`. `replay`: send the accepted `Authorization`
/// header once more, as an eavesdropper would, and print that status too.
async fn python_digest(url: &str, user: &str, password: &str, replay: bool) -> Vec<u16> {
    const SCRIPT: &str = r#"
import sys, requests
from requests.auth import HTTPDigestAuth
url, user, password, replay = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
r = requests.get(url, auth=HTTPDigestAuth(user, password), timeout=10)
print(r.status_code)
if replay:
    again = requests.get(url, headers={"Authorization": r.request.headers["Authorization"]}, timeout=10)
    print(again.status_code)
"#;
    let output = Command::new("python3")
        .args(["-c", SCRIPT, url, user, password, if replay { "1" } else { "0" }])
        .output()
        .await
        .expect("python3 runs");
    assert!(output.status.success(), "python: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// The phone's last fetch as `/api/phones` shows it: (last_seen, user_agent).
async fn last_fetch(running: &Running, mac: &str) -> (Option<String>, Option<String>) {
    let page = running.get_json("/api/phones?limit=500").await.unwrap();
    let phone = page["phones"].as_array().unwrap().iter().find(|p| p["mac"] == mac).cloned().unwrap();
    (phone["last_seen"].as_str().map(str::to_owned), phone["user_agent"].as_str().map(str::to_owned))
}

/// A challenge with its nonces blanked, to compare two challenges' shape.
fn challenge_shape(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| {
            let text = v.to_str().unwrap_or_default();
            match text.split_once("nonce=\"") {
                Some((before, after)) => {
                    format!("{before}nonce=\"…\"{}", after.split_once('"').map_or("", |(_, rest)| rest))
                }
                None => text.to_owned(),
            }
        })
        .collect()
}

#[tokio::test]
async fn digest_serves_each_phone_only_its_own_file_to_curl_and_python() {
    let builder = offline().extra("[provisioning]\nauth = \"digest\"\nscan_limit = 100");
    let running = Running::start(BINARY, &builder, &phones()).await.unwrap();
    let yealink = &running.phones[0];
    let spa = &running.phones[1];
    let url = |phone: &TestPhone| running.url(&phone.path());

    // No credentials: a challenge, and the fetch does not count as the phone's.
    let plain = running.client().get(url(yealink)).send().await.unwrap();
    assert_eq!(plain.status(), 401);
    let known_challenge = challenge_shape(plain.headers());
    assert_eq!(known_challenge.len(), 2, "{known_challenge:?}");
    assert!(known_challenge[0].contains("algorithm=SHA-256") && known_challenge[1].contains("algorithm=MD5"));
    assert_eq!(last_fetch(&running, &yealink.mac).await, (None, None));

    // An unknown MAC is answered exactly like a known one without credentials.
    let unknown = running.client().get(running.url("/prov/yealink/0015659f9f9f.cfg")).send().await.unwrap();
    assert_eq!(unknown.status(), 401);
    assert_eq!(challenge_shape(unknown.headers()), known_challenge);
    let unknown_body = unknown.text().await.unwrap();
    assert_eq!(unknown_body, plain.text().await.unwrap());

    // curl --digest, right password: the phone's own file, with its credentials in it.
    let credentials = format!("{}:prov-pass-0001", yealink.mac);
    let (status, body) =
        curl(&["--digest", "-u", &credentials, "-A", "Yealink SIP-T46S 66.86.0.15", &url(yealink)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("account.1.password = {}", yealink.password)), "{body}");
    assert!(body.contains(&format!("static.auto_provision.server.username = {}", yealink.mac)), "{body}");
    assert!(body.contains("static.auto_provision.server.password = prov-pass-0001"), "{body}");
    // Only the authenticated fetch counts as the phone's.
    // (The user agent comes from the store, where fetches are flushed every 2 s.)
    let agent = until("the fetch recorded with its user agent", Duration::from_secs(10), || async {
        let (seen, agent) = last_fetch(&running, &yealink.mac).await;
        seen.and(agent)
    })
    .await
    .unwrap();
    assert_eq!(agent, "Yealink SIP-T46S 66.86.0.15");

    // Wrong password, another phone's password, another phone's file: 401.
    let cases = [
        ("a wrong password", format!("{}:guess", yealink.mac), url(yealink)),
        ("another phone's password", format!("{}:prov-pass-0004", yealink.mac), url(yealink)),
        ("another phone's file", credentials.clone(), url(spa)),
        ("a phone without a prov_password", format!("{}:", running.phones[2].mac), url(&running.phones[2])),
    ];
    for (what, user, target) in cases {
        let (status, body) = curl(&["--digest", "-u", &user, &target]).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(!body.contains("password"), "{what}: {body}");
    }

    // Python requests: right password, then the same Authorization header replayed.
    let spa_user = spa.mac.clone();
    assert_eq!(python_digest(&url(spa), &spa_user, "prov-pass-0004", true).await, vec![200, 401]);
    assert_eq!(python_digest(&url(spa), &spa_user, "wrong", false).await, vec![401]);
    let profile = curl(&["--digest", "-u", &format!("{spa_user}:prov-pass-0004"), &url(spa)]).await.1;
    assert!(
        profile.contains(&format!("[--uid {spa_user} --pwd prov-pass-0004]")),
        "the SPA profile rule carries its credentials: {profile}"
    );

    // The common Yealink file needs a phone's credentials too.
    let common = running.url("/prov/yealink/y000000000044.cfg");
    assert_eq!(curl(&[&common]).await.0, 401);
    assert_eq!(curl(&["--digest", "-u", &credentials, &common]).await.0, 200);

    // Malformed or foreign Authorization headers: 401, never a 500.
    let long = format!("Digest username=\"{}\"", "a".repeat(10_000));
    for header in [
        "Digest",
        "Digest username=\"0015651234a1\", realm=\"switchback\", nonce=\"AAAA\", uri=\"/x\", response=\"00\"",
        "Basic MDAxNTY1MTIzNGExOnByb3YtcGFzcy0wMDAx",
        "Digest username=\"0015651234a1\", realm=\"elsewhere\", nonce=\"AAAA\", uri=\"/x\", qop=auth, nc=00000001, cnonce=\"c\", response=\"00\", algorithm=SHA-512",
        long.as_str(),
    ] {
        let response = running.client().get(url(yealink)).header("Authorization", header).send().await.unwrap();
        assert_eq!(response.status(), 401, "{header:.60}");
    }
}

// ---- client certificates -----------------------------------------------------------------

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A phone CA, a server certificate for 127.0.0.1, device certificates for two phones
    /// (MAC in the CN; MAC in a DNS SAN), and a look-alike of the first from another CA.
    fn make(cn_mac: &str, san_mac: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            (cert, key)
        };
        let (phone_ca, phone_ca_key) = ca("Phone Device CA");
        let (other_ca, other_ca_key) = ca("Phone Device CA"); // same name, other key
        write("phone-ca.pem", &phone_ca.pem());
        write("server-ca.pem", &phone_ca.pem());
        let leaf = |names: Vec<String>,
                    cn: &str,
                    issuer: &rcgen::Certificate,
                    issuer_key: &KeyPair,
                    client: bool| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![if client {
                ExtendedKeyUsagePurpose::ClientAuth
            } else {
                ExtendedKeyUsagePurpose::ServerAuth
            }];
            (params.signed_by(&key, issuer, issuer_key).unwrap(), key)
        };
        let (server, server_key) =
            leaf(vec!["127.0.0.1".into()], "switchback", &phone_ca, &phone_ca_key, false);
        write("server.pem", &server.pem());
        write("server.key", &server_key.serialize_pem());
        let (cn, cn_key) = leaf(vec![], &cn_mac.to_uppercase(), &phone_ca, &phone_ca_key, true);
        write("cn.pem", &cn.pem());
        write("cn.key", &cn_key.serialize_pem());
        let dashed: Vec<&str> = (0..6).map(|i| &san_mac[i * 2..i * 2 + 2]).collect();
        let san_name = format!("yealink-{}.phones.example", dashed.join("-"));
        let (san, san_key) = leaf(vec![san_name], "Yealink T46S", &phone_ca, &phone_ca_key, true);
        write("san.pem", &san.pem());
        write("san.key", &san_key.serialize_pem());
        let (fake, fake_key) = leaf(vec![], cn_mac, &other_ca, &other_ca_key, true);
        write("fake.pem", &fake.pem());
        write("fake.key", &fake_key.serialize_pem());
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[tokio::test]
async fn client_certificates_open_only_their_own_phone_files() {
    let phones = vec![
        TestPhone::new("0015651234a1", "yealink", 1),
        TestPhone::new("0015651234a2", "yealink", 2),
        TestPhone::new("c8d719000104", "linksys", 4),
    ];
    let pki = Pki::make("0015651234a1", "0015651234a2");
    let tls_port = free_port(Ipv4Addr::LOCALHOST).unwrap();
    let builder = offline()
        .server_line(&format!("tls_listen = \"127.0.0.1:{tls_port}\""))
        .server_line(&format!("tls_cert = \"{}\"", pki.path("server.pem")))
        .server_line(&format!("tls_key = \"{}\"", pki.path("server.key")))
        .extra(&format!(
            "[provisioning]\nauth = \"client_cert\"\nclient_ca = \"{}\"\nhttps_only = true\nscan_limit = 100",
            pki.path("phone-ca.pem")
        ));
    let running = Running::start(BINARY, &builder, &phones).await.unwrap();
    let https = |path: &str| format!("https://127.0.0.1:{tls_port}{path}");
    let with = |cert: &str| {
        vec![
            "--cacert".to_owned(),
            pki.path("server-ca.pem"),
            "--cert".into(),
            pki.path(&format!("{cert}.pem")),
            "--key".into(),
            pki.path(&format!("{cert}.key")),
        ]
    };
    let fetch = |cert: Option<&str>, path: String| {
        let mut args = cert.map_or_else(|| vec!["--cacert".to_owned(), pki.path("server-ca.pem")], with);
        args.push(path);
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&refs).await
        }
    };
    let (a1, a2, spa) = (&phones[0].path(), &phones[1].path(), &phones[2].path());
    let cases: [(&str, Option<&str>, &str, u16); 8] = [
        ("the MAC in the CN", Some("cn"), a1, 200),
        ("the MAC in a SAN", Some("san"), a2, 200),
        ("another phone's file", Some("cn"), a2, 403),
        ("another vendor's phone", Some("san"), spa, 403),
        ("no certificate", None, a1, 403),
        ("a look-alike from another CA", Some("fake"), a1, 403),
        ("the common file, any phone", Some("san"), "/prov/yealink/y000000000044.cfg", 200),
        ("the common file, no certificate", None, "/prov/yealink/y000000000044.cfg", 403),
    ];
    for (what, cert, path, want) in cases {
        let (status, body) = fetch(cert, https(path)).await;
        assert_eq!(status, want, "{what}: {body}");
    }
    // The dashboard needs no certificate on the same listener; plain HTTP phone files
    // are refused by https_only.
    assert_eq!(fetch(None, https("/healthz")).await.0, 200);
    assert_eq!(running.get(a1).await.unwrap().status, 403);
    // The list reads the store, where fetches are flushed every 2 s.
    until("the certificate fetch counted as the phone's", Duration::from_secs(10), || async {
        last_fetch(&running, &phones[0].mac).await.0
    })
    .await
    .unwrap();
    assert_eq!(last_fetch(&running, &phones[2].mac).await.0, None, "refused fetches do not count");
}

// ---- scans -------------------------------------------------------------------------------

/// A client whose requests come from `ip` (any 127.x address is this machine).
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::V4(ip)).timeout(Duration::from_secs(10)).build().unwrap()
}

#[tokio::test]
async fn a_scanner_is_blocked_and_alerted_once_while_phones_keep_fetching() {
    const LIMIT: u32 = 8;
    let receiver = Receiver::always(200).await.unwrap();
    let builder = offline().extra(&format!(
        "[provisioning]\nauth = \"digest\"\nscan_limit = {LIMIT}\nblock_for = \"1h\"\n\n\
         [[alerts]]\nname = \"oncall\"\nurl = \"{}\"\nformat = \"generic\"",
        receiver.url("oncall")
    ));
    let running = Running::start(BINARY, &builder, &phones()).await.unwrap();
    let phone = &running.phones[0];
    let phone_fetch = || {
        let credentials = format!("{}:prov-pass-0001", phone.mac);
        let url = running.url(&phone.path());
        async move { curl(&["--digest", "-u", &credentials, &url]).await.0 }
    };
    let scanner_ip = Ipv4Addr::new(127, 0, 0, 9);
    let scanner = client_from(scanner_ip);
    let scan = |i: u32| {
        let url = running.url(&format!("/prov/yealink/001565{:06x}.cfg", 0xab0000 + i));
        let scanner = scanner.clone();
        async move { scanner.get(url).send().await.unwrap().status().as_u16() }
    };
    let mut answers = Vec::new();
    for i in 0..LIMIT + 5 {
        answers.push(scan(i).await);
        if i == LIMIT / 2 {
            assert_eq!(phone_fetch().await, 200, "a phone fetches in the middle of the scan");
        }
    }
    let blocked_at = answers.iter().position(|s| *s == 403).expect("the scanner was blocked");
    assert_eq!(blocked_at, LIMIT as usize, "answers: {answers:?}");
    assert!(answers[..blocked_at].iter().all(|s| *s == 401), "before the block, challenges: {answers:?}");
    assert!(answers[blocked_at..].iter().all(|s| *s == 403), "{answers:?}");
    // Blocked for known MACs too, with the right password.
    let blocked_phone = scanner.get(running.url(&phone.path())).send().await.unwrap();
    assert_eq!(blocked_phone.status(), 403);
    // The phone on another address is not affected.
    assert_eq!(phone_fetch().await, 200);

    let blocks = running.get_json("/api/provisioning/blocks").await.unwrap();
    let list = blocks["blocks"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{blocks}");
    assert_eq!(list[0]["source"], "127.0.0.9");
    assert_eq!(list[0]["bad_requests"], LIMIT);
    let events = running.events_of("provisioning_scan").await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"], "127.0.0.9");
    // (The offline sites also make a monitor_blind alert: only scan alerts count here.)
    let is_scan =
        |r: &switchback_tests::receiver::Received| r.json().is_ok_and(|j| j["type"] == "provisioning_scan");
    let alerts = receiver
        .wait_until("a scan alert", Duration::from_secs(10), |all| all.iter().any(is_scan))
        .await
        .unwrap();
    let alert = alerts.iter().find(|r| is_scan(r)).unwrap().json().unwrap();
    assert_eq!(alert["actor"], "127.0.0.9", "{alert}");
    // More scanning while blocked: no second event or alert.
    for i in 0..5 {
        assert_eq!(scan(100 + i).await, 403);
    }
    let metrics = running.get("/metrics").await.unwrap().text();
    assert!(metrics.contains("switchback_provisioning_blocks 1"), "{metrics}");

    // Lifting needs the admin token; the read token may only look.
    let lift_url = running.url("/api/provisioning/blocks/127.0.0.9");
    let no_token = running.client().delete(&lift_url).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let lifted = running.client().delete(&lift_url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(lifted.status(), 200, "{}", lifted.text().await.unwrap());
    assert_eq!(scan(200).await, 401, "lifted: challenged again");
    let again = running.client().delete(&lift_url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(running.events_of("provisioning_scan").await.unwrap().len(), 1);
    let all = receiver.received();
    let scans = all.iter().filter(|r| is_scan(r)).count();
    assert_eq!(scans, 1, "one alert per block");
}

#[tokio::test]
async fn sources_outside_allow_are_refused_and_not_counted() {
    let builder =
        offline().extra("[provisioning]\nauth = \"none\"\nallow = [\"127.0.0.1/32\"]\nscan_limit = 3");
    let running = Running::start(BINARY, &builder, &phones()).await.unwrap();
    let outsider = client_from(Ipv4Addr::new(127, 0, 0, 23));
    for i in 0..10 {
        let url = running.url(&format!("/prov/yealink/001565{:06x}.cfg", i));
        assert_eq!(outsider.get(url).send().await.unwrap().status(), 403);
    }
    let known = outsider.get(running.url(&running.phones[0].path())).send().await.unwrap();
    assert_eq!(known.status(), 403, "a known phone outside allow");
    assert_eq!(running.get(&running.phones[0].path()).await.unwrap().status, 200, "inside allow");
    let blocks = running.get_json("/api/provisioning/blocks").await.unwrap();
    assert_eq!(blocks["blocks"].as_array().map(Vec::len), Some(0), "{blocks}");
}

/// A phone that keeps its digest session across a restart of switchback: its next
/// request answers with a nonce the new process never made, gets `stale=true`, and
/// answers the fresh challenge, without counting as a bad request (`scan_limit = 2`:
/// the very first challenge counts, then the phone authenticates and is trusted; after
/// the restart nothing is trusted, so one more counted request would block it).
#[tokio::test]
async fn a_restart_makes_nonces_stale_not_bad() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    const SCRIPT: &str = r#"
import sys, requests
from requests.auth import HTTPDigestAuth
url, user, password = sys.argv[1:4]
session = requests.Session()
session.auth = HTTPDigestAuth(user, password)
for _ in range(2):
    r = session.get(url, timeout=10)
    print(" ".join(str(h.status_code) for h in r.history + [r]), flush=True)
    sys.stdin.readline()
"#;
    let builder = offline().extra("[provisioning]\nauth = \"digest\"\nscan_limit = 2");
    let mut running = Running::start(BINARY, &builder, &phones()).await.unwrap();
    let phone = running.phones[0].clone();
    let mut python = Command::new("python3")
        .args(["-c", SCRIPT, &running.url(&phone.path()), &phone.mac, "prov-pass-0001"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = python.stdin.take().unwrap();
    let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("401 200"), "challenge, then the file");
    running.stop().await.unwrap();
    running.start_again().await.unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    // The old nonce is sent first (preemptively), refused as stale, then the new one works.
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("401 200"));
    let blocks = running.get_json("/api/provisioning/blocks").await.unwrap();
    assert_eq!(blocks["blocks"].as_array().map(Vec::len), Some(0), "{blocks}");
}

/// Bad TLS and provisioning settings stop `run` at start with exit 2, naming the key.
#[tokio::test]
async fn bad_tls_files_stop_the_start_and_name_the_key() {
    let pki = Pki::make("0015651234a1", "0015651234a2");
    let garbage = pki.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n").unwrap();
    let garbage = garbage.display().to_string();
    let missing = pki.path("missing.pem");
    let tls_port = free_port(Ipv4Addr::LOCALHOST).unwrap();
    let tls = |cert: &str, key: &str| {
        offline()
            .server_line(&format!("tls_listen = \"127.0.0.1:{tls_port}\""))
            .server_line(&format!("tls_cert = \"{cert}\""))
            .server_line(&format!("tls_key = \"{key}\""))
    };
    let client_cert = |ca: &str| {
        tls(&pki.path("server.pem"), &pki.path("server.key"))
            .extra(&format!("[provisioning]\nauth = \"client_cert\"\nclient_ca = \"{ca}\""))
    };
    let cases = [
        ("a missing certificate", tls(&missing, &pki.path("server.key")), "server.tls_cert"),
        ("a garbage certificate", tls(&garbage, &pki.path("server.key")), "server.tls_cert"),
        (
            "a key that is not the certificate's",
            tls(&pki.path("server.pem"), &pki.path("cn.key")),
            "server.tls_key",
        ),
        ("a missing key", tls(&pki.path("server.pem"), &missing), "server.tls_key"),
        ("a garbage client_ca", client_cert(&garbage), "provisioning.client_ca"),
        ("a missing client_ca", client_cert(&missing), "provisioning.client_ca"),
        (
            "client_cert without tls_listen",
            offline().extra("[provisioning]\nauth = \"client_cert\"\nclient_ca = \"/x.pem\""),
            "provisioning.auth",
        ),
        ("a bad CIDR", offline().extra("[provisioning]\nallow = [\"10.0.0.0/40\"]"), "provisioning.allow"),
        ("a short token", offline().admin_token("short"), "server.admin_token"),
    ];
    for (what, builder, key) in cases {
        let config = builder.write().unwrap();
        let mut process = switchback_tests::switchback::Switchback::run(BINARY, config.path()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = process.exited() {
                break status;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: still running:\n{}", process.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status.code(), Some(2), "{what}: {}", process.log());
        assert!(process.log().contains(key), "{what}: the error does not name {key}:\n{}", process.log());
    }
}

/// A Yealink phone with V81+ firmware asks for two `.boot` files before its `.cfg` files
/// on every poll: it must never block itself. And a scanner that only asks for MACs that
/// exist is blocked exactly as fast as one that asks for MACs that do not, so the blocks
/// say nothing about which MACs exist.
#[tokio::test]
async fn real_polls_never_block_and_blocks_tell_nothing_about_macs() {
    const LIMIT: u32 = 4;
    let builder = offline().extra(&format!("[provisioning]\nauth = \"digest\"\nscan_limit = {LIMIT}"));
    let running = Running::start(BINARY, &builder, &phones()).await.unwrap();
    let phone = running.phones[0].clone();
    let credentials = format!("{}:prov-pass-0001", phone.mac);
    for poll in 0..3 * LIMIT {
        for boot in
            [format!("/prov/yealink/{}.boot", phone.mac), "/prov/yealink/y000000000000.boot".to_owned()]
        {
            let (status, _) = curl(&["--interface", "127.0.0.11", &running.url(&boot)]).await;
            assert_eq!(status, 404, "poll {poll}: {boot}");
        }
        for path in ["/prov/yealink/y000000000044.cfg".to_owned(), phone.path()] {
            let (status, body) =
                curl(&["--interface", "127.0.0.11", "--digest", "-u", &credentials, &running.url(&path)])
                    .await;
            assert_eq!(status, 200, "poll {poll}: {path}: {body}");
        }
    }
    // Two scanners without credentials: one asks for known MACs only, one for unknown.
    let known = client_from(Ipv4Addr::new(127, 0, 0, 12));
    let unknown = client_from(Ipv4Addr::new(127, 0, 0, 13));
    let mut answers = (Vec::new(), Vec::new());
    for i in 0..LIMIT + 2 {
        let known_path = running.phones[i as usize % 2].path();
        answers.0.push(known.get(running.url(&known_path)).send().await.unwrap().status().as_u16());
        let unknown_path = format!("/prov/yealink/001565{:06x}.cfg", 0xcc0000 + i);
        answers.1.push(unknown.get(running.url(&unknown_path)).send().await.unwrap().status().as_u16());
    }
    assert_eq!(answers.0, answers.1, "known and unknown MACs answered alike, blocks included");
    assert_eq!(answers.0.iter().position(|s| *s == 403), Some(LIMIT as usize), "{answers:?}");
}

/// `SIGHUP` re-reads the certificate and key; a broken pair keeps the old ones in use.
#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_bad_one_keeps_the_old() {
    let (old, new) = (Pki::make("0015651234a1", "0015651234a2"), Pki::make("0015651234a1", "0015651234a2"));
    let live = tempfile::tempdir().unwrap();
    let (cert, key) = (live.path().join("cert.pem"), live.path().join("key.pem"));
    let install = |pki: &Pki| {
        std::fs::copy(pki.path("server.pem"), &cert).unwrap();
        std::fs::copy(pki.path("server.key"), &key).unwrap();
    };
    install(&old);
    let tls_port = free_port(Ipv4Addr::LOCALHOST).unwrap();
    let builder = offline()
        .server_line(&format!("tls_listen = \"127.0.0.1:{tls_port}\""))
        .server_line(&format!("tls_cert = \"{}\"", cert.display()))
        .server_line(&format!("tls_key = \"{}\"", key.display()));
    let running = Running::start(BINARY, &builder, &[]).await.unwrap();
    let url = format!("https://127.0.0.1:{tls_port}/healthz");
    let trusted_by = |pki: &Pki| {
        let (ca, url) = (pki.path("server-ca.pem"), url.clone());
        async move { curl(&["--cacert", &ca, &url]).await.0 }
    };
    let hangup = || {
        let pid = running.process.pid().unwrap();
        assert!(std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success());
    };
    assert_eq!(trusted_by(&old).await, 200);
    assert_eq!(trusted_by(&new).await, 0, "the new CA does not know the old certificate");

    // A certificate without its key: refused, the old pair stays.
    std::fs::copy(new.path("server.pem"), &cert).unwrap();
    hangup();
    until("the reload to be refused", Duration::from_secs(10), || async {
        running.process.log().contains("tls certificate not reloaded").then_some(())
    })
    .await
    .unwrap();
    assert_eq!(trusted_by(&old).await, 200, "the old certificate is still served");

    install(&new);
    hangup();
    until("the new certificate served", Duration::from_secs(10), || async {
        (trusted_by(&new).await == 200).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(trusted_by(&old).await, 0);
}
