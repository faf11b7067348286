//! `switchback demo` as a newcomer runs it: a failover moves both vendors' files from
//! the primary site's address to the backup's, and the alert arrives in the demo's own
//! webhook inbox. Phone files are fetched with curl, with HTTP Digest, as the README says.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use switchback_tests::peers::free_port;
use switchback_tests::wait::until;
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");

/// A phone file as the walkthrough fetches it.
async fn file(base: &str, user: &str, password: &str, path: &str) -> Option<String> {
    let out = Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "5",
            "--digest",
            "-u",
            &format!("{user}:{password}"),
            &format!("{base}{path}"),
        ])
        .output()
        .await
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn proxy_of_spa(body: &str) -> Option<String> {
    let start = body.find("<Proxy_1_")?;
    let value = &body[start..];
    let value = &value[value.find('>')? + 1..];
    Some(value[..value.find('<')?].to_owned())
}

#[tokio::test]
async fn a_failover_in_the_demo_moves_both_vendors_to_the_backup_address_and_alerts_its_inbox() {
    let port = free_port(Ipv4Addr::LOCALHOST).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut demo = Command::new(BINARY)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let lab = || async {
        let answer = client.get(format!("{base}/demo")).send().await.ok()?;
        answer.json::<serde_json::Value>().await.ok()
    };
    until("the demo to answer", Duration::from_secs(30), lab).await.unwrap();
    let spa = ("000e08000001", "demo-prov-201", "/prov/linksys/spa000e08000001.xml");
    let yealink = ("001565000001", "demo-prov-101", "/prov/yealink/001565000001.cfg");
    let before = file(&base, spa.0, spa.1, spa.2).await.expect("the SPA file of the walkthrough");
    let home = proxy_of_spa(&before).unwrap();
    let yealink_before = file(&base, yealink.0, yealink.1, yealink.2).await.expect("the Yealink file");
    assert!(home.starts_with("127.0.0.2:"), "chicago's softswitch is on 127.0.0.2: {home}");
    // A Yealink file gives the address and the port on lines of their own.
    let sip_at = |ip: &str| format!("account.1.sip_server.1.address = {ip}");
    let ip = |proxy: &str| proxy.split(':').next().unwrap_or_default().to_owned();
    assert!(yealink_before.contains(&sip_at(&ip(&home))), "both vendors point at chicago: {yealink_before}");

    let broke = client.post(format!("{base}/demo/primary/softswitch/break")).send().await.unwrap();
    assert_eq!(broke.status(), 200);
    let away = until("the SPA file to point at the backup", Duration::from_secs(30), || async {
        let proxy = proxy_of_spa(&file(&base, spa.0, spa.1, spa.2).await?)?;
        proxy.starts_with("127.0.0.3:").then_some(proxy)
    })
    .await
    .unwrap();
    let yealink_after = file(&base, yealink.0, yealink.1, yealink.2).await.unwrap();
    assert!(yealink_after.contains(&sip_at(&ip(&away))), "the Yealink file moved too: {yealink_after}");
    let inbox = until("a failover alert in the demo's inbox", Duration::from_secs(20), || async {
        let lab = lab().await?;
        let inbox = lab["inbox"].as_array()?.clone();
        inbox.iter().any(|d| d["kind"] == "failover").then_some(inbox)
    })
    .await
    .unwrap();
    assert!(inbox.iter().any(|d| d["summary"].as_str().unwrap_or("").contains("virginia")), "{inbox:?}");
    demo.kill().await.unwrap();
}
