//! Phones end to end: `switchback phones import` (all or nothing, errors that name the
//! line and the field), a running `switchback run` picking up an import, and how phone
//! files are served: strict names and a plain 404 for everything else, ETags that are the
//! MD5 a Yealink phone compares, `If-None-Match` answered with 304.
//!
//! Nothing here depends on the sites' health: the sites are addresses where nothing
//! listens (the monitor is blind and moves nothing), and routes are moved by the operator
//! API where a test needs another generation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::net::SocketAddr;
use std::time::Duration;

use switchback_tests::lab::{phones_csv, sample_phones, write_file, Running, TestPhone};
use switchback_tests::phone_files::{self, md5_hex, YEALINK_VERSION_LINE};
use switchback_tests::switchback::{phones_import, ConfigBuilder, SiteAddrs};
use switchback_tests::wait::until;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");
const TOKEN: &str = "phones-test-token";
/// A running switchback looks for a new import every 3 s.
const IMPORT_NOTICED_WITHIN: Duration = Duration::from_secs(3);

/// Two sites where nothing answers: the monitor is blind and every route stays put.
fn offline_config() -> ConfigBuilder {
    let site = || SiteAddrs::offline().unwrap();
    // Most of these tests ask for files that do not exist on purpose: far more than the
    // default scan_limit allows from one source.
    ConfigBuilder::new(site(), site()).admin_token(TOKEN).extra("[provisioning]\nscan_limit = 100000")
}

const HEADER: &str = "mac,vendor,model,display_name,user_id,auth_id,password\n";

/// A row for a phone that is not in the sample inventory.
const NEW_PHONE_ROW: &str = "00:15:65:99:00:01,yealink,T46S,New desk,3001,auth3001,pw3001\n";

#[tokio::test]
async fn a_bad_row_rejects_the_whole_file_and_names_its_line_and_field() {
    let phones = sample_phones();
    let running = Running::start(BINARY, &offline_config(), &phones).await.unwrap();
    let listed = running.get_json("/api/phones").await.unwrap();
    assert_eq!(listed["total"], phones.len(), "{listed}");
    let before = running.bodies().await.unwrap();

    // Each file starts with a good row for a new phone and a good update of a known one,
    // so that a partial import would show.
    let update = format!("{},yealink,T46S,Renamed,1,1,changed-password\n", phones[0].mac);
    let good = format!("{NEW_PHONE_ROW}{update}");
    let cases: [(&str, String, &str, Option<&str>); 8] = [
        ("a malformed MAC", "00156512zzzz,yealink,T46S,X,1,1,p\n".into(), "line 4", Some("mac")),
        ("an empty MAC", ",linksys,SPA504G,X,1,1,p\n".into(), "line 4", Some("mac")),
        ("an unknown vendor", "001565000abc,polycom,VVX,X,1,1,p\n".into(), "line 4", Some("vendor")),
        (
            "a line break in a name",
            "001565000abc,yealink,T46S,\"Front\ndesk\",1,1,p\n".into(),
            "line 4",
            Some("display_name"),
        ),
        (
            "a control character",
            "001565000abc,linksys,SPA504G,X,1,1,p\u{7}w\n".into(),
            "line 4",
            Some("password"),
        ),
        ("a short row", "001565000abc,yealink,T46S\n".into(), "line 4", None),
        ("a MAC twice", "00-15-65-99-00-01,linksys,SPA504G,X,1,1,p\n".into(), "line 4", Some("mac")),
        (
            "a bad row after a blank line",
            "\n001565000abc,yealink,T46S,X,1,1,p\u{1b}\n".into(),
            "line 5",
            Some("password"),
        ),
    ];
    for (what, bad_row, line, field) in cases {
        let csv = format!("{HEADER}{good}{bad_row}");
        let path = write_file(running.config.dir(), "bad.csv", &csv).unwrap();
        let run = phones_import(BINARY, running.config.path(), &path).await.unwrap();
        eprintln!("{what}: exit {:?}: {}", run.code, run.stderr.trim());
        assert_eq!(run.code, Some(2), "{what}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(line), "{what}: the message does not name {line}: {}", run.stderr);
        if let Some(field) = field {
            assert!(run.stderr.contains(field), "{what}: the message does not name {field}: {}", run.stderr);
        }
        assert!(run.stderr.contains("nothing imported"), "{what}: {}", run.stderr);
    }
    let header_only_bad = "mac,vendor,model,name,user_id,auth_id,password\n";
    let path = write_file(running.config.dir(), "bad.csv", header_only_bad).unwrap();
    let run = phones_import(BINARY, running.config.path(), &path).await.unwrap();
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("line 1") && run.stderr.contains("name"), "{}", run.stderr);

    // A good import afterwards is noticed by the running switchback; once it is, the
    // inventory is the sample plus that phone: nothing of the bad files got in.
    let extra = "001565aa0002,linksys,SPA504G,Later,4001,auth4001,pw4001\n";
    let path = write_file(running.config.dir(), "good.csv", &format!("{HEADER}{extra}")).unwrap();
    let run = phones_import(BINARY, running.config.path(), &path).await.unwrap();
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    until("the good import served", IMPORT_NOTICED_WITHIN * 3, || async {
        (running.get("/prov/linksys/spa001565aa0002.xml").await.ok()?.status == 200).then_some(())
    })
    .await
    .unwrap();
    let listed = running.get_json("/api/phones").await.unwrap();
    assert_eq!(listed["total"], phones.len() + 1, "{listed}");
    for path in [
        "/prov/yealink/001565990001.cfg",
        "/prov/yealink/001565000abc.cfg",
        "/prov/linksys/spa001565000abc.xml",
    ] {
        assert_eq!(running.get(path).await.unwrap().status, 404, "{path} was imported from a rejected file");
    }
    assert_eq!(running.bodies().await.unwrap(), before, "a rejected file changed a known phone");
}

#[tokio::test]
async fn a_running_switchback_serves_an_import_within_seconds_in_the_same_generation() {
    let phones = sample_phones();
    let running = Running::start(BINARY, &offline_config(), &phones).await.unwrap();
    let generation = running.status().await.unwrap().generation();
    let new_phone = TestPhone::new("001565990001", "yealink", 9);
    let mut renamed = phones[3].clone();
    renamed.display_name = "Renamed & moved".into();
    assert_eq!(running.get(&new_phone.path()).await.unwrap().status, 404);
    let old_renamed = running.file(&renamed).await.unwrap().body;

    let path =
        write_file(running.config.dir(), "more.csv", &phones_csv(&[new_phone.clone(), renamed.clone()]))
            .unwrap();
    let imported = Instant::now();
    let run = phones_import(BINARY, running.config.path(), &path).await.unwrap();
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    until("the new phone served", IMPORT_NOTICED_WITHIN * 3, || async {
        (running.get(&new_phone.path()).await.ok()?.status == 200).then_some(())
    })
    .await
    .unwrap();
    let took = imported.elapsed();
    eprintln!("import -> new phone served by the running switchback: {took:?}");
    assert!(took <= IMPORT_NOTICED_WITHIN + Duration::from_secs(2), "took {took:?}");

    let spa = phone_files::SpaFile::parse(&running.file(&renamed).await.unwrap().text()).unwrap();
    assert_eq!(spa.get("Display_Name_1_").unwrap(), "Renamed & moved");
    assert_ne!(running.file(&renamed).await.unwrap().body, old_renamed);
    let status = running.status().await.unwrap();
    assert_eq!(status.generation(), generation, "an import is not a new generation of sites");
    assert_eq!(status.0["phones"]["total"], phones.len() + 1);
}

/// `GET path` written by hand, so that `..` and odd bytes reach the server as they are
/// (an HTTP client would normalise them away). Answers the status and the body.
async fn raw_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

#[tokio::test]
async fn unknown_phones_wrong_vendor_paths_and_malformed_names_get_a_plain_404() {
    let phones = sample_phones();
    let running = Running::start(BINARY, &offline_config(), &phones).await.unwrap();
    let addr = running.config.listen().unwrap();
    let (yealink, linksys) = (&phones[0].mac, &phones[3].mac);

    let not_found = [
        "/prov/yealink/0015650000ff.cfg".to_owned(),
        "/prov/linksys/spa0015650000ff.xml".to_owned(),
        format!("/prov/linksys/spa{yealink}.xml"),
        format!("/prov/yealink/{linksys}.cfg"),
        format!("/prov/polycom/{yealink}.cfg"),
        format!("/prov/cisco/spa{linksys}.xml"),
        format!("/prov/Yealink/{yealink}.cfg"),
        format!("/prov/yealink/{}.cfg", &yealink[..11]),
        format!("/prov/yealink/{yealink}0.cfg"),
        format!("/prov/yealink/{yealink}.CFG"),
        format!("/prov/yealink/{yealink}.xml"),
        format!("/prov/yealink/{yealink}.cfg.bak"),
        format!("/prov/yealink/{yealink}.cfg/x"),
        format!("/prov/yealink/{}.cfg", "00:15:65:12:34:a1"),
        format!("/prov/yealink/{}.cfg", "00-15-65-12-34-a1"),
        format!("/prov/yealink/%20{yealink}.cfg"),
        format!("/prov/linksys/SPA{linksys}.xml"),
        format!("/prov/linksys/spa{linksys}.cfg"),
        format!("/prov/linksys/{linksys}.xml"),
        "/prov/yealink/y0000000000zz.cfg".to_owned(),
        "/prov/yealink/y00000000002.cfg".to_owned(),
        "/prov/yealink/".to_owned(),
        "/prov/yealink".to_owned(),
        "/prov/".to_owned(),
        "/prov/yealink/../../Cargo.toml".to_owned(),
        "/prov/yealink/..%2f..%2fCargo.toml".to_owned(),
        "/prov/yealink/%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_owned(),
        "/prov/../etc/passwd".to_owned(),
        "/prov/yealink/..%5c..%5cswitchback.toml".to_owned(),
        "/prov/yealink/switchback.toml".to_owned(),
        "/prov/yealink/switchback.db".to_owned(),
        "/switchback.toml".to_owned(),
        format!("/prov/yealink/{yealink}.cfg%00.txt"),
    ];
    let mut bodies = std::collections::BTreeSet::new();
    for path in &not_found {
        let (status, content_type, body) = raw_get(addr, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!content_type.contains("json") && !content_type.contains("html"), "{path}: {content_type}");
        assert!(!body.contains("password") && !body.contains('{'), "{path}: {body}");
        bodies.insert(body);
    }
    assert_eq!(bodies.len(), 1, "404s differ, telling a scanner which names exist: {bodies:?}");

    // The real names, for contrast: 12 hex digits in either case, and any model code.
    for phone in &phones {
        let response = running.file(phone).await.unwrap();
        phone_files::pointing(phone.vendor, &response.body).unwrap();
        let upper = phone.path().replace(&phone.mac, &phone.mac.to_uppercase());
        assert_eq!(running.get(&upper).await.unwrap().body, response.body, "{upper}");
    }
    for code in ["28", "66", "0a", "0A"] {
        let response = running.get(&format!("/prov/yealink/y0000000000{code}.cfg")).await.unwrap();
        assert_eq!(response.status, 200, "model code {code}");
        assert!(response.text().starts_with(YEALINK_VERSION_LINE), "{}", response.text());
    }
}

#[tokio::test]
async fn etags_are_the_md5_and_if_none_match_gets_304() {
    let phones = sample_phones();
    let running = Running::start(BINARY, &offline_config(), &phones).await.unwrap();
    let yealink = &phones[0];
    let linksys = &phones[4];

    let mut old = Vec::new();
    for (phone, content_type) in [(yealink, "text/plain"), (linksys, "application/xml")] {
        let response = running.file(phone).await.unwrap();
        let etag = response.header("etag").unwrap().to_owned();
        assert_eq!(etag, format!("\"{}\"", md5_hex(&response.body)), "{}", phone.path());
        assert!(response.header("content-type").unwrap().starts_with(content_type), "{:?}", response.headers);

        for if_none_match in [etag.clone(), format!("\"0123\", {etag}"), format!("W/{etag}"), "*".into()] {
            let request =
                running.client().get(running.url(&phone.path())).header("if-none-match", &if_none_match);
            let answer = switchback_tests::switchback::read(request.send().await.unwrap()).await.unwrap();
            assert_eq!(answer.status, 304, "If-None-Match: {if_none_match}");
            assert!(answer.body.is_empty());
            assert_eq!(answer.header("etag"), Some(etag.as_str()));
        }
        let request = running.client().get(running.url(&phone.path())).header("if-none-match", "\"0123\"");
        let answer = switchback_tests::switchback::read(request.send().await.unwrap()).await.unwrap();
        assert_eq!((answer.status, &answer.body), (200, &response.body), "another ETag");
        old.push((phone, etag, response.body));
    }
    let common = running.get("/prov/yealink/y000000000028.cfg").await.unwrap();
    assert_eq!(common.header("etag").unwrap(), format!("\"{}\"", md5_hex(&common.body)));

    // A new generation changes the files, and an old ETag gets the new file. Where the
    // file points is read before the action: the new generation may be in before the
    // action's answer is.
    let home = running.pointing(yealink).await.unwrap();
    let moved = running.act("sip", "failover", Some(TOKEN), None).await.unwrap();
    assert_eq!(moved.status, 200, "{}", moved.text());
    wait_pointing_changed(&running, yealink, &home).await;
    for (phone, etag, body) in &old {
        let request = running.client().get(running.url(&phone.path())).header("if-none-match", etag);
        let answer = switchback_tests::switchback::read(request.send().await.unwrap()).await.unwrap();
        assert_eq!(answer.status, 200, "{} after the failover", phone.path());
        assert_ne!(&answer.body, body);
        assert_eq!(answer.header("etag").unwrap(), format!("\"{}\"", md5_hex(&answer.body)));
    }
    // Back on the same sites, the files are byte-identical again, ETags too.
    let away = running.pointing(yealink).await.unwrap();
    let back = running.act("sip", "failback", Some(TOKEN), None).await.unwrap();
    assert_eq!(back.status, 200, "{}", back.text());
    wait_pointing_changed(&running, yealink, &away).await;
    for (phone, etag, body) in &old {
        let response = running.file(phone).await.unwrap();
        assert_eq!(&response.body, body, "{} differs on the same sites", phone.path());
        assert_eq!(response.header("etag"), Some(etag.as_str()));
    }
}

/// Waits until the phone's file no longer points where it did: the new generation is in.
async fn wait_pointing_changed(running: &Running, phone: &TestPhone, was: &phone_files::Pointing) {
    until("a new generation served", Duration::from_secs(10), || async {
        (running.pointing(phone).await.ok()? != *was).then_some(())
    })
    .await
    .unwrap();
}
