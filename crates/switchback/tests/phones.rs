//! Phones end to end: `switchback phones import` (all or nothing, errors that name the
//! line and the field, every bad row at once), `phones list`, `export` and `remove`, a
//! running `switchback run` picking up an import or a removal, and how phone files are
//! served: strict names and a plain 404 for everything else, ETags that are the
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

// ---- phones list, export, remove; several bad rows; completions and man ----------------

/// `switchback ARGS…` to its end.
async fn cli(args: &[&str]) -> switchback_tests::switchback::CheckRun {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    switchback_tests::switchback::one_shot(BINARY, &args).await.unwrap()
}

/// `switchback phones COMMAND --config FILE ARGS…`, which must exit `code`.
async fn phones_cli(config: &std::path::Path, command: &str, args: &[&str], code: i32) -> String {
    let config = config.to_str().unwrap();
    let run = cli(&[&["phones", command, "--config", config], args].concat()).await;
    assert_eq!(run.code, Some(code), "phones {command} {args:?}:\n{}{}", run.stdout, run.stderr);
    if code == 0 {
        run.stdout
    } else {
        run.stderr
    }
}

/// A config whose store holds `phones`, imported through the CLI.
async fn with_phones(phones: &[TestPhone]) -> switchback_tests::switchback::TestConfig {
    let config = offline_config().write().unwrap();
    let csv = write_file(config.dir(), "phones.csv", &phones_csv(phones)).unwrap();
    let run = phones_import(BINARY, config.path(), &csv).await.unwrap();
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    config
}

/// Stores a fetch of `mac` `ago` before now, as a running switchback's flush would.
async fn record_fetch(config: &switchback_tests::switchback::TestConfig, mac: &str, ago: Duration) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", config.store_path().display());
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let at = now_micros() - i64::try_from(ago.as_micros()).unwrap();
    sqlx::query(
        "INSERT INTO phone_fetches (mac, vendor, at, generation, source, user_agent, fetches) \
         VALUES ($1, 'yealink', $2, 7, '10.0.0.9', 'Yealink SIP-T46S 66.86.0.15', 1)",
    )
    .bind(mac)
    .bind(at)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

fn now_micros() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(now.as_micros()).unwrap()
}

#[tokio::test]
async fn phones_list_shows_no_credential_in_every_format_and_stale_ones_alone() {
    let phones = sample_phones();
    let config = with_phones(&phones).await;
    // Phone 0 fetched just now, phone 1 ten minutes ago (three poll intervals are 3 min).
    record_fetch(&config, &phones[0].mac, Duration::from_secs(1)).await;
    record_fetch(&config, &phones[1].mac, Duration::from_secs(600)).await;
    let path = config.path();

    let table = phones_cli(path, "list", &[], 0).await;
    eprintln!("{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), phones.len() + 1, "{table}");
    assert!(lines[0].starts_with("MAC") && lines[0].contains("LAST FETCH"), "{table}");
    let row = lines.iter().find(|l| l.starts_with(&phones[0].mac)).unwrap();
    assert!(row.contains("Desk 1") && row.contains("2001") && row.contains("10.0.0.9"), "{row}");
    // Columns line up: every row's second column starts where the header's does.
    let vendor_at = lines[0].find("VENDOR").unwrap();
    assert!(lines[1..]
        .iter()
        .all(|l| l[vendor_at..].starts_with("yealink") || l[vendor_at..].starts_with("linksys")));

    let csv = phones_cli(path, "list", &["--format", "csv"], 0).await;
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("mac,vendor,model,display_name,user_id,last_fetch,generation,source"));
    assert_eq!(rows.count(), phones.len());
    assert!(csv.contains("\"Lobby & Co <main>, \"\"front\"\"\""), "{csv}");

    let json = phones_cli(path, "list", &["--format", "json"], 0).await;
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), phones.len());
    let first = listed.iter().find(|p| p["mac"] == phones[0].mac.as_str()).unwrap();
    assert_eq!(
        (&first["user_id"], &first["last_fetch"]["generation"]),
        (&"2001".into(), &7.into()),
        "{first}"
    );
    assert_eq!(first["last_fetch"]["source"], "10.0.0.9");
    assert!(listed.iter().filter(|p| p["last_fetch"].is_null()).count() == phones.len() - 2, "{json}");

    for output in [&table, &csv, &json] {
        for phone in &phones {
            assert!(!output.contains(&phone.password) && !output.contains(&phone.auth_id), "{output}");
        }
    }

    // Stale: never seen, or last seen more than three poll intervals ago.
    let stale = phones_cli(path, "list", &["--stale", "--format", "json"], 0).await;
    let stale: Vec<String> = serde_json::from_str::<serde_json::Value>(&stale)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["mac"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = phones[1..].iter().map(|p| p.mac.clone()).collect();
    expected.sort();
    assert_eq!(stale, expected);

    // No store: refused, and none is created.
    let empty = offline_config().write().unwrap();
    let err = phones_cli(empty.path(), "list", &[], 2).await;
    assert!(err.contains("does not exist"), "{err}");
    assert!(!empty.store_path().exists(), "list created a store");
}

#[tokio::test]
async fn an_export_imported_elsewhere_reproduces_the_inventory_byte_for_byte() {
    use std::os::unix::fs::PermissionsExt;
    let mut phones = sample_phones();
    phones[2] = phones[2].clone().with_prov_password("Xk4-9qZ_r!");
    let config = with_phones(&phones).await;
    let exported = phones_cli(config.path(), "export", &[], 0).await;
    let header = "mac,vendor,model,display_name,user_id,auth_id,password,prov_password\n";
    assert!(exported.starts_with(header), "{exported}");
    assert_eq!(exported.lines().count(), phones.len() + 1);
    assert!(exported.contains(&phones[0].password), "an export carries the SIP passwords");

    // Into a fresh store, then exported from there: the same bytes.
    let elsewhere = offline_config().write().unwrap();
    let file = write_file(elsewhere.dir(), "exported.csv", &exported).unwrap();
    let run = phones_import(BINARY, elsewhere.path(), &file).await.unwrap();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(phones_cli(elsewhere.path(), "export", &[], 0).await, exported);
    // Imported back where it came from, it changes nobody's fields.
    let run = phones_import(BINARY, config.path(), &file).await.unwrap();
    assert!(run.stdout.contains(&format!("0 added, {} updated", phones.len())), "{}", run.stdout);
    assert_eq!(phones_cli(config.path(), "export", &[], 0).await, exported);

    // --output: a new file, owner-only; never over an existing one without --force.
    let out = config.dir().join("out.csv");
    let out_arg = out.to_str().unwrap();
    phones_cli(config.path(), "export", &["--output", out_arg], 0).await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), exported);
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::write(&out, "kept").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = phones_cli(config.path(), "export", &["--output", out_arg], 2).await;
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept");
    phones_cli(config.path(), "export", &["--output", out_arg, "--force"], 0).await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), exported);
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let help = cli(&["phones", "export", "--help"]).await.stdout;
    assert!(help.contains("stdout") && help.contains("SIP password"), "{help}");
}

#[tokio::test]
async fn phones_remove_takes_any_spelling_and_removes_none_when_one_is_unknown() {
    let phones = sample_phones();
    let running = Running::start(BINARY, &offline_config(), &phones).await.unwrap();
    let path = running.config.path();
    let (a, b) = (&phones[0], &phones[3]);
    assert_eq!(running.get(&a.path()).await.unwrap().status, 200);

    // An unknown MAC among known ones: nothing removed, the unknown one named, exit 1.
    let err = phones_cli(path, "remove", &[&a.mac, "00:15:65:99:99:FF", &b.mac], 1).await;
    assert!(err.contains("0015659999ff") && err.contains("nothing removed"), "{err}");
    assert!(!err.contains(&a.mac), "a known MAC is named unknown: {err}");
    assert_eq!(phones_cli(path, "list", &["--format", "csv"], 0).await.lines().count(), phones.len() + 1);
    // A MAC that is no MAC: refused before the store is touched.
    let err = phones_cli(path, "remove", &[&a.mac, "00156512zz"], 2).await;
    assert!(err.contains("00156512zz"), "{err}");

    let spelled_a = a.mac.as_bytes().chunks(2).map(|p| std::str::from_utf8(p).unwrap()).collect::<Vec<_>>();
    let colons = spelled_a.join(":").to_uppercase();
    let dashes =
        b.mac.as_bytes().chunks(2).map(|p| std::str::from_utf8(p).unwrap()).collect::<Vec<_>>().join("-");
    let out = phones_cli(path, "remove", &[&colons, &dashes, &a.mac], 0).await;
    assert!(out.starts_with("removed 2 phones"), "{out}");
    let listed = phones_cli(path, "list", &["--format", "csv"], 0).await;
    assert_eq!(listed.lines().count(), phones.len() - 1, "{listed}");
    assert!(!listed.contains(&a.mac) && !listed.contains(&b.mac), "{listed}");

    // The running switchback notices (the inventory's count dropped) and stops serving them.
    until("the removed phones no longer served", IMPORT_NOTICED_WITHIN * 3, || async {
        let gone = running.get(&a.path()).await.ok()?.status == 404
            && running.get(&b.path()).await.ok()?.status == 404;
        gone.then_some(())
    })
    .await
    .unwrap();
    assert_eq!(running.get(&phones[1].path()).await.unwrap().status, 200);
}

#[tokio::test]
async fn an_import_reports_every_bad_row_and_stores_nothing() {
    let phones = sample_phones();
    let config = with_phones(&phones).await;
    let before = phones_cli(config.path(), "export", &[], 0).await;
    let csv = format!(
        "{HEADER}{NEW_PHONE_ROW}\
         00156512zzzz,yealink,T46S,X,1,1,p\n\
         {},polycom,VVX,X,1,1,p\n\
         001565000abc,yealink,T46S\n\
         00-15-65-99-00-01,linksys,SPA504G,X,1,1,p\n\
         001565000abd,yealink,T46S,X,,1,p\n",
        phones[0].mac
    );
    let path = write_file(config.dir(), "bad.csv", &csv).unwrap();
    let run = phones_import(BINARY, config.path(), &path).await.unwrap();
    eprintln!("{}", run.stderr);
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("nothing imported") && run.stderr.contains("5 bad rows"), "{}", run.stderr);
    for expected in [
        "line 3, field mac",
        "line 4, field vendor: unknown vendor `polycom`",
        "line 5: has 3 fields, the header has 7",
        "line 6, field mac: 001565990001 is already on line 2",
        "line 7, field user_id: must not be empty",
    ] {
        assert!(run.stderr.contains(expected), "{expected} not reported:\n{}", run.stderr);
    }
    assert_eq!(
        phones_cli(config.path(), "export", &[], 0).await,
        before,
        "a rejected file changed the store"
    );
}

#[tokio::test]
async fn completions_and_the_manual_page() {
    let bash = cli(&["completions", "bash"]).await;
    assert_eq!(bash.code, Some(0), "{}", bash.stderr);
    assert!(bash.stdout.contains("phones") && bash.stdout.contains("remove"), "{}", bash.stdout);
    for shell in ["zsh", "fish"] {
        let run = cli(&["completions", shell]).await;
        assert!(run.code == Some(0) && run.stdout.contains("phones"), "{shell}: {}", run.stderr);
    }
    let man = cli(&["man"]).await;
    assert_eq!(man.code, Some(0), "{}", man.stderr);
    assert!(man.stdout.lines().any(|l| l.starts_with(".TH switchback")), "{}", man.stdout);
}
