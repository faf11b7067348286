use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use switchback_core::Role::{Backup, Primary};

use super::*;
use crate::fixtures::{mac, phone, phones, settings, sites};

fn render(sites: &ActiveSites, phones: &[Phone]) -> Generation {
    Generation::render(1, sites, &settings(), phones).unwrap_or_else(|e| panic!("render: {e}"))
}

fn text(file: &PhoneFile) -> &str {
    std::str::from_utf8(file.bytes()).unwrap_or_else(|e| panic!("not UTF-8: {e}"))
}

/// A Yealink file as its keys, checking its shape on the way.
fn yealink_keys(file: &PhoneFile) -> BTreeMap<String, String> {
    let text = text(file);
    assert!(text.ends_with('\n') && !text.ends_with("\n\n"), "one final newline: {text:?}");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("#!version:1.0.0.1"));
    let mut keys = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let (key, value) = line.split_once(" = ").unwrap_or_else(|| panic!("not `key = value`: {line:?}"));
        assert!(!key.is_empty() && !key.contains(char::is_whitespace), "bad key in {line:?}");
        assert!(keys.insert(key.to_owned(), value.to_owned()).is_none(), "{key} twice");
    }
    keys
}

/// An SPA flat profile as its elements, checking its shape on the way.
fn spa_keys(file: &PhoneFile) -> BTreeMap<String, String> {
    let doc = roxmltree::Document::parse(text(file)).unwrap_or_else(|e| panic!("not XML: {e}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "flat-profile");
    let mut keys = BTreeMap::new();
    for element in root.children().filter(roxmltree::Node::is_element) {
        let name = element.tag_name().name();
        assert_eq!(element.attribute("ua"), Some("na"), "{name} lacks ua=\"na\"");
        assert!(element.children().all(|c| c.is_text()), "{name} has child elements");
        keys.insert(name.to_owned(), element.text().unwrap_or_default().to_owned());
    }
    keys
}

fn expect(keys: &BTreeMap<String, String>, expected: &[(&str, &str)]) {
    for (key, value) in expected {
        assert_eq!(keys.get(*key).map(String::as_str), Some(*value), "{key}");
    }
}

#[test]
fn yealink_file_carries_the_phone_and_the_active_sites() {
    let mut p = phone(1, Vendor::Yealink);
    p.auth_id = "auth1001".to_owned();
    let generation = render(&sites(Backup, Primary), &[p]);
    let file = generation.yealink_file("001500000001.cfg").unwrap_or_else(|| panic!("no file"));
    assert_eq!(file.content_type(), "text/plain; charset=utf-8");
    expect(
        &yealink_keys(file),
        &[
            ("account.1.enable", "1"),
            ("account.1.label", "Desk 1"),
            ("account.1.display_name", "Desk 1"),
            ("account.1.user_name", "1001"),
            ("account.1.auth_name", "auth1001"),
            ("account.1.password", "pw-1"),
            ("account.1.sip_server.1.address", "sip1.va.example.net"),
            ("account.1.sip_server.1.port", "5080"),
            ("account.1.sip_server.1.transport_type", "1"),
            ("account.1.nat.nat_traversal", "1"),
            ("static.sip.nat_stun.enable", "1"),
            ("static.sip.nat_stun.server", "stun1.chi.example.net"),
            ("static.sip.nat_stun.port", "3478"),
            ("static.auto_provision.repeat.enable", "1"),
            ("static.auto_provision.repeat.minutes", "2"),
            ("static.auto_provision.server.url", "http://prov.example.net:8080/prov/yealink/"),
        ],
    );
}

#[test]
fn spa_file_carries_the_phone_and_the_active_sites() {
    let mut p = phone(2, Vendor::Linksys);
    p.auth_id = "auth1002".to_owned();
    let generation = render(&sites(Primary, Backup), &[p, phone(3, Vendor::Linksys)]);
    let file = generation.linksys_file("spa001500000002.xml").unwrap_or_else(|| panic!("no file"));
    assert_eq!(file.content_type(), "application/xml");
    expect(
        &spa_keys(file),
        &[
            ("Profile_Rule", "http://prov.example.net:8080/prov/linksys/spa$MA.xml"),
            ("Resync_On_Reset", "Yes"),
            ("Resync_Periodic", "120"),
            ("Proxy_1_", "sip1.chi.example.net:5060"),
            ("SIP_Transport_1_", "UDP"),
            ("User_ID_1_", "1002"),
            ("Password_1_", "pw-2"),
            ("Auth_ID_1_", "auth1002"),
            ("Use_Auth_ID_1_", "Yes"),
            ("Display_Name_1_", "Desk 2"),
            ("STUN_Enable", "Yes"),
            ("STUN_Server", "stun1.va.example.net:3479"),
        ],
    );
    let other = generation.linksys_file("spa001500000003.xml").unwrap_or_else(|| panic!("no file"));
    expect(&spa_keys(other), &[("Use_Auth_ID_1_", "No"), ("Auth_ID_1_", "")]);
}

#[test]
fn spa_values_are_escaped_into_well_formed_xml() {
    let mut p = phone(4, Vendor::Linksys);
    p.display_name = "Lobby & Co <main>".to_owned();
    p.password = SecretString::from("a\"b'c</Password_1_><Proxy_1_ ua=\"na\">evil");
    let generation = render(&sites(Primary, Primary), &[p]);
    let file = generation.linksys_file("spa001500000004.xml").unwrap_or_else(|| panic!("no file"));
    let keys = spa_keys(file);
    expect(&keys, &[("Display_Name_1_", "Lobby & Co <main>"), ("Proxy_1_", "sip1.chi.example.net:5060")]);
    assert_eq!(keys["Password_1_"], "a\"b'c</Password_1_><Proxy_1_ ua=\"na\">evil");
}

#[test]
fn common_file_is_valid_and_the_same_for_every_model_code() {
    let generation = render(&sites(Primary, Primary), &[]);
    let keys = yealink_keys(generation.yealink_common());
    assert!(keys.is_empty(), "{keys:?}");
    for name in ["y000000000028.cfg", "y000000000066.cfg", "y0000000000AB.cfg"] {
        let file = generation.yealink_file(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(file.etag(), generation.yealink_common().etag());
    }
}

#[test]
fn files_depend_only_on_phone_and_active_sites() {
    let inventory = phones(50);
    let one = render(&sites(Primary, Primary), &inventory);
    let two = Generation::render(99, &sites(Primary, Primary), &settings(), &inventory)
        .unwrap_or_else(|e| panic!("{e}"));
    let failed_over = render(&sites(Backup, Primary), &inventory);
    assert_eq!(one.phone_count(), 50);
    for (name, file) in one.phone_files() {
        let again = two.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(file.bytes(), again.bytes(), "{name} differs between equal generations");
        assert_eq!(file.etag(), again.etag());
        let moved = failed_over.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_ne!(file.etag(), moved.etag(), "{name} did not follow the sip route");
    }
    assert_eq!(one.yealink_common().bytes(), failed_over.yealink_common().bytes());
}

#[test]
fn etag_is_the_quoted_md5_of_the_bytes() {
    let file = PhoneFile::new(Bytes::from_static(b"hello"), CONTENT_TYPE_CFG);
    assert_eq!(file.etag(), "\"5d41402abc4b2a76b9719d911017c592\"");
    assert_eq!(file.md5_hex(), "5d41402abc4b2a76b9719d911017c592");
    assert!(file.etag_matches("\"5d41402abc4b2a76b9719d911017c592\""));
    assert!(file.etag_matches("\"x\", W/\"5d41402abc4b2a76b9719d911017c592\""));
    assert!(file.etag_matches("*"));
    assert!(!file.etag_matches("\"5d41402abc4b2a76b9719d911017c593\""));
    assert!(!file.etag_matches("5d41402abc4b2a76b9719d911017c592"));
}

#[test]
fn lookup_is_strict() {
    let generation =
        render(&sites(Primary, Primary), &[phone(0xab, Vendor::Yealink), phone(0xac, Vendor::Linksys)]);
    assert!(generation.lookup("yealink", "0015000000ab.cfg").is_some());
    assert!(generation.lookup("yealink", "0015000000AB.cfg").is_some());
    assert!(generation.lookup("linksys", "spa0015000000AC.xml").is_some());
    for (vendor, name) in [
        ("linksys", "spa0015000000ab.xml"), // a Yealink phone on the SPA path
        ("yealink", "0015000000ac.cfg"),    // an SPA phone on the Yealink path
        ("yealink", "0015000000ad.cfg"),    // unknown phone
        ("yealink", "../0015000000ab.cfg"),
        ("yealink", "0015000000ab.cfg.bak"),
        ("yealink", "0015000000a.cfg"),
        ("yealink", "0015000000ab.xml"),
        ("linksys", "0015000000ac.xml"),
        ("polycom", "0015000000ab.cfg"),
    ] {
        assert!(generation.lookup(vendor, name).is_none(), "{vendor}/{name}");
    }
}

#[test]
fn a_bad_or_duplicate_phone_fails_the_generation() {
    let mut bad = phone(5, Vendor::Yealink);
    bad.display_name = "x\ny = 1".to_owned();
    let err = Generation::render(1, &sites(Primary, Primary), &settings(), &[phone(4, Vendor::Yealink), bad]);
    let message = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(message, "phone 001500000005: field display_name: contains a line break at character 2");

    let twice = [phone(6, Vendor::Yealink), phone(6, Vendor::Linksys)];
    let err = Generation::render(1, &sites(Primary, Primary), &settings(), &twice);
    let message = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(message, "phone 001500000006 is in the inventory twice");
}

#[test]
fn debug_output_shows_no_file_contents() {
    let generation = render(&sites(Primary, Primary), &phones(2));
    let file = generation.get(FileName::YealinkPhone(mac(0))).unwrap_or_else(|| panic!("missing"));
    for debug in [format!("{generation:?}"), format!("{file:?}")] {
        assert!(!debug.contains("pw-0"), "{debug}");
    }
}

#[test]
fn a_reader_keeps_its_whole_generation_across_a_swap() {
    let generations = Generations::new(render(&sites(Primary, Primary), &phones(4)));
    let held = generations.current();
    let before = held.get(FileName::YealinkPhone(mac(0))).map(|f| f.bytes().clone());

    let next = Generation::render(2, &sites(Backup, Primary), &settings(), &phones(2))
        .unwrap_or_else(|e| panic!("{e}"));
    let old = generations.swap(next);

    assert_eq!(old.number(), 1);
    assert_eq!(generations.current().number(), 2);
    assert_eq!(generations.current().phone_count(), 2);
    // The held generation is unchanged: same files, including a phone the new one dropped.
    assert_eq!(held.number(), 1);
    assert_eq!(held.phone_count(), 4);
    assert_eq!(held.get(FileName::YealinkPhone(mac(0))).map(|f| f.bytes().clone()), before);
    assert!(held.get(FileName::LinksysPhone(mac(3))).is_some());
}

#[test]
fn a_generation_counts_its_phones_by_vendor_and_a_swap_is_announced() {
    let generations = Generations::new(render(&sites(Primary, Primary), &phones(5)));
    let current = generations.current();
    assert_eq!(current.phone_count_of(Vendor::Yealink), 3);
    assert_eq!(current.phone_count_of(Vendor::Linksys), 2);
    let mut swaps = generations.watch();
    assert!(!swaps.has_changed().unwrap_or(true));
    // The same number with another inventory is a swap too.
    generations.swap(render(&sites(Primary, Primary), &phones(2)));
    assert!(swaps.has_changed().unwrap_or(false));
    swaps.mark_unchanged();
    assert_eq!(generations.current().phone_count_of(Vendor::Linksys), 1);
}

#[test]
fn tls_softswitches_are_transport_2_and_tls_on_port_5061() {
    let mut active = sites(Backup, Primary);
    active.sip.transport = switchback_core::config::Transport::Tls;
    active.sip.port = 5061;
    let generation = render(&active, &[phone(5, Vendor::Yealink), phone(6, Vendor::Linksys)]);
    let yealink = generation.yealink_file("001500000005.cfg").unwrap_or_else(|| panic!("no file"));
    expect(
        &yealink_keys(yealink),
        &[("account.1.sip_server.1.transport_type", "2"), ("account.1.sip_server.1.port", "5061")],
    );
    let spa = generation.linksys_file("spa001500000006.xml").unwrap_or_else(|| panic!("no file"));
    expect(&spa_keys(spa), &[("SIP_Transport_1_", "TLS"), ("Proxy_1_", "sip1.va.example.net:5061")]);
}

/// The phones the golden files were rendered for, on `sites(Backup, Primary)`.
fn golden_phones() -> [Phone; 2] {
    let mut yealink = phone(1, Vendor::Yealink);
    yealink.auth_id = "auth1001".to_owned();
    let mut spa = phone(2, Vendor::Linksys);
    spa.display_name = "Lobby & Co <main>".to_owned();
    [yealink, spa]
}

#[test]
fn without_a_provisioning_password_the_files_are_byte_for_byte_as_before() {
    // Rendered before provisioning passwords existed: a phone without one must get
    // exactly these bytes, or every Yealink would see a changed MD5 and re-provision.
    let generation = render(&sites(Backup, Primary), &golden_phones());
    let yealink = generation.yealink_file("001500000001.cfg").unwrap_or_else(|| panic!("no file"));
    assert_eq!(text(yealink), include_str!("golden/yealink_without_prov_password.cfg"));
    let spa = generation.linksys_file("spa001500000002.xml").unwrap_or_else(|| panic!("no file"));
    assert_eq!(text(spa), include_str!("golden/spa_without_prov_password.xml"));
}

#[test]
fn yealink_file_carries_the_provisioning_credentials_after_the_server_url() {
    let [mut p, _] = golden_phones();
    p.prov_password = Some(SecretString::from("Xk4-9qZ_r!"));
    let generation = render(&sites(Backup, Primary), &[p]);
    let file = generation.yealink_file("001500000001.cfg").unwrap_or_else(|| panic!("no file"));
    let keys = yealink_keys(file);
    expect(
        &keys,
        &[
            ("static.auto_provision.server.url", "http://prov.example.net:8080/prov/yealink/"),
            ("static.auto_provision.server.username", "001500000001"),
            ("static.auto_provision.server.password", "Xk4-9qZ_r!"),
            ("account.1.password", "pw-1"),
        ],
    );
    // The same file as without, plus the two lines right after the server URL.
    let with = text(file);
    let url_line = "static.auto_provision.server.url = http://prov.example.net:8080/prov/yealink/\n";
    let added = "static.auto_provision.server.username = 001500000001\n\
                 static.auto_provision.server.password = Xk4-9qZ_r!\n";
    let without = include_str!("golden/yealink_without_prov_password.cfg");
    assert_eq!(with, without.replace(url_line, &format!("{url_line}{added}")));
}

#[test]
fn spa_profile_rule_carries_the_provisioning_credentials() {
    let [_, mut p] = golden_phones();
    p.prov_password = Some(SecretString::from("Xk4-9qZ_r!~%^*()+=,;:?@{}/"));
    let generation = render(&sites(Backup, Primary), &[p]);
    let file = generation.linksys_file("spa001500000002.xml").unwrap_or_else(|| panic!("no file"));
    let keys = spa_keys(file);
    expect(
        &keys,
        &[
            (
                "Profile_Rule",
                "[--uid 001500000002 --pwd Xk4-9qZ_r!~%^*()+=,;:?@{}/]\
                 http://prov.example.net:8080/prov/linksys/spa$MA.xml",
            ),
            ("Password_1_", "pw-2"),
            ("Display_Name_1_", "Lobby & Co <main>"),
        ],
    );
    // Only the profile rule differs from the file without a provisioning password.
    let without = include_str!("golden/spa_without_prov_password.xml");
    let rule = ">http://prov.example.net:8080/prov/linksys/spa$MA.xml<";
    let with_rule = ">[--uid 001500000002 --pwd Xk4-9qZ_r!~%^*()+=,;:?@{}/]http://prov.example.net:8080/prov/linksys/spa$MA.xml<";
    assert_eq!(text(file), without.replace(rule, with_rule));
}

#[test]
fn each_phone_gets_its_own_credentials_and_the_generation_keeps_them() {
    let mut inventory = phones(4);
    for p in &mut inventory[..3] {
        p.prov_password = Some(SecretString::from(format!("prov-{}", p.mac)));
    }
    let generation = render(&sites(Primary, Primary), &inventory);
    for n in 0..3 {
        let password = generation.prov_password(mac(n)).map(|p| p.expose_secret().to_owned());
        assert_eq!(password, Some(format!("prov-{}", mac(n))));
    }
    assert!(generation.prov_password(mac(3)).is_none(), "a phone without one");
    assert!(generation.prov_password(mac(9)).is_none(), "an unknown phone");

    let yealink = generation.get(FileName::YealinkPhone(mac(2))).unwrap_or_else(|| panic!("missing"));
    expect(&yealink_keys(yealink), &[("static.auto_provision.server.password", "prov-001500000002")]);
    let spa = generation.get(FileName::LinksysPhone(mac(1))).unwrap_or_else(|| panic!("missing"));
    let rule = &spa_keys(spa)["Profile_Rule"];
    assert!(rule.starts_with("[--uid 001500000001 --pwd prov-001500000001]http://"), "{rule}");
    let plain = generation.get(FileName::LinksysPhone(mac(3))).unwrap_or_else(|| panic!("missing"));
    assert!(spa_keys(plain)["Profile_Rule"].starts_with("http://"));

    for debug in [format!("{generation:?}"), format!("{:?}", generation.prov_password(mac(0)))] {
        assert!(!debug.contains("prov-0015"), "{debug}");
    }
}

#[test]
fn a_bad_provisioning_password_fails_the_generation_without_quoting_it() {
    let mut bad = phone(7, Vendor::Linksys);
    bad.prov_password = Some(SecretString::from("pa$MAword"));
    let err = Generation::render(1, &sites(Primary, Primary), &settings(), &[bad]);
    let message = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        message,
        "phone 001500000007: field prov_password: may not contain `$` at character 3 \
         (the SPA profile rule would expand it)"
    );
}
