//! The demo's sample phones, and simulated ones that poll for their files the way real
//! Yealink and SPA phones do (their user agents, `If-None-Match`), only faster so the
//! demo's convergence is visible within seconds.

use std::time::Duration;

use rand::Rng;
use secrecy::ExposeSecret;
use switchback_provisioning::{Mac, Phone, Vendor};
use tokio_util::sync::CancellationToken;

/// How often a simulated phone polls (real ones: `phones.poll_interval`, 60 s or more).
const DEMO_POLL: Duration = Duration::from_secs(4);

const NAMES: [&str; 12] = [
    "Lobby & Co <main>",
    "Front desk",
    "Dispatch",
    "Warehouse",
    "Conference A",
    "Conference B",
    "Sales 1",
    "Sales 2",
    "Support 1",
    "Support 2",
    "Kitchen",
    "Night line",
];

/// Twelve Yealink and twelve Linksys SPA phones.
pub fn samples() -> Vec<Phone> {
    let mut phones = Vec::new();
    for (i, name) in (1u8..).zip(NAMES) {
        for (vendor, oui, model, ext) in [
            (Vendor::Yealink, [0x00, 0x15, 0x65], "T46S", 100),
            (Vendor::Linksys, [0x00, 0x0e, 0x08], "SPA504G", 200),
        ] {
            let user = format!("{}", ext + u16::from(i));
            phones.push(Phone {
                mac: Mac::new([oui[0], oui[1], oui[2], 0x00, 0x00, i]),
                vendor,
                model: model.to_owned(),
                display_name: name.to_owned(),
                user_id: user.clone(),
                auth_id: user.clone(),
                password: format!("demo-{user}").into(),
                prov_password: Some(format!("demo-prov-{user}").into()),
            });
        }
    }
    phones
}

fn path_and_agent(phone: &Phone) -> (String, String) {
    match phone.vendor {
        Vendor::Yealink => (
            format!("/prov/yealink/{}.cfg", phone.mac),
            format!("Yealink SIP-{} 66.86.0.15 {}", phone.model, phone.mac),
        ),
        Vendor::Linksys => (
            format!("/prov/linksys/spa{}.xml", phone.mac),
            format!("Cisco/{}-7.6.2c ({})", phone.model, phone.mac.to_string().to_uppercase()),
        ),
    }
}

/// Every sample phone polls until `shutdown`, each on its own jittered schedule.
pub async fn poll_forever(base: String, phones: Vec<Phone>, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(5)).build() {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "simulated phones cannot start");
            return;
        }
    };
    for phone in phones {
        let (path, agent) = path_and_agent(&phone);
        let (client, shutdown, base) = (client.clone(), shutdown.clone(), base.clone());
        let username = phone.mac.to_string();
        let password = phone.prov_password.as_ref().map(|p| p.expose_secret().to_owned()).unwrap_or_default();
        tokio::spawn(async move {
            let mut etag: Option<String> = None;
            let offset = rand::rng().random_range(0..DEMO_POLL.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(offset)).await;
            loop {
                let request = |authorization: Option<&str>| {
                    let mut request =
                        client.get(format!("{base}{path}")).header(reqwest::header::USER_AGENT, &agent);
                    if let Some(tag) = &etag {
                        request = request.header(reqwest::header::IF_NONE_MATCH, tag);
                    }
                    if let Some(value) = authorization {
                        request = request.header(reqwest::header::AUTHORIZATION, value);
                    }
                    request
                };
                let mut answer = request(None).send().await;
                // Digest: the first answer is a challenge; answer it as the phone would.
                if let Ok(challenged) = &answer {
                    if let Some(authorization) = answer_challenge(challenged, &username, &password, &path) {
                        answer = request(Some(&authorization)).send().await;
                    }
                }
                if let Ok(response) = answer {
                    if response.status().is_success() {
                        etag = response
                            .headers()
                            .get(reqwest::header::ETAG)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(DEMO_POLL) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }
}

/// The `Authorization` value for a 401's first Digest challenge this client can answer.
fn answer_challenge(
    response: &reqwest::Response,
    username: &str,
    password: &str,
    path: &str,
) -> Option<String> {
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        return None;
    }
    let context = digest_auth::AuthContext::new(username, password, path);
    response.headers().get_all(reqwest::header::WWW_AUTHENTICATE).iter().find_map(|value| {
        let mut prompt = digest_auth::parse(value.to_str().ok()?).ok()?;
        prompt.respond(&context).ok().map(|answer| answer.to_header_string())
    })
}
