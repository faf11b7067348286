use std::io::{self, Read};

use secrecy::ExposeSecret;

use super::*;

const HEADER: &str = "mac,vendor,model,display_name,user_id,auth_id,password\n";

fn parse(body: &str) -> Result<Vec<Phone>, ImportError> {
    parse_phones_csv(format!("{HEADER}{body}").as_bytes())
}

fn error(body: &str) -> String {
    match parse(body) {
        Ok(phones) => panic!("accepted {} phones from {body:?}", phones.len()),
        Err(err) => err.to_string(),
    }
}

#[test]
fn good_file_with_quoted_fields_and_every_mac_spelling() {
    let phones = parse(concat!(
        "0015651234ab,yealink,T46S,\"Lobby & Co, <main>\",1001,,pw1\n",
        "00:15:65:12:34:AC,linksys,SPA504G,\"Say \"\"hi\"\"\",1002,auth1002,\"p,w\"\n",
        "00-15-65-12-34-ad,Yealink,,,1003,,\n",
        "0015.6512.34ae,yealink,,,1004,,x\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(phones.len(), 4);
    assert_eq!(phones[0].display_name, "Lobby & Co, <main>");
    assert_eq!(phones[1].mac.to_string(), "0015651234ac");
    assert_eq!(phones[1].vendor, Vendor::Linksys);
    assert_eq!(phones[1].display_name, "Say \"hi\"");
    assert_eq!(phones[1].auth_id, "auth1002");
    assert_eq!(phones[1].password.expose_secret(), "p,w");
    assert_eq!(phones[2].vendor, Vendor::Yealink);
    assert_eq!(phones[2].password.expose_secret(), "");
}

#[test]
fn windows_line_endings_and_a_byte_order_mark_are_fine() {
    let text = "\u{feff}mac,vendor,model,display_name,user_id,auth_id,password\r\n\
                0015651234ab,yealink,T46S,Desk,1001,,pw\r\n\
                0015651234ac,linksys,SPA,Desk 2,1002,,pw\r\n";
    let phones = parse_phones_csv(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(phones.len(), 2);
    assert_eq!(phones[1].password.expose_secret(), "pw");
}

#[test]
fn header_only_is_an_empty_inventory() {
    assert_eq!(parse("").map(|p| p.len()).ok(), Some(0));
}

#[test]
fn the_first_bad_row_names_its_line_and_field() {
    let good: String = (0..5).map(|n| format!("00156512340{n},yealink,T46S,Desk,100{n},,pw\n")).collect();
    let cases = [
        (format!("{good}zz,yealink,,,1,,\n"), "line 7, field mac: `zz`: `z` is not a hex digit"),
        ("0015651234ab,polycom,,,1,,\n".to_owned(), "line 2, field vendor: unknown vendor `polycom`"),
        (",yealink,,,1,,\n".to_owned(), "line 2, field mac: must not be empty"),
        ("0015651234ab,,,,1,,\n".to_owned(), "line 2, field vendor: must not be empty"),
        ("0015651234ab,yealink,,,,,\n".to_owned(), "line 2, field user_id: must not be empty"),
        (
            "0015651234ab,yealink,,Bell\u{7},1,,\n".to_owned(),
            "line 2, field display_name: contains control character U+0007",
        ),
        (
            "0015651234ab,yealink,,,1,,pw\tx\n".to_owned(),
            "line 2, field password: contains control character U+0009",
        ),
        ("0015651234ab,yealink,,,1\n".to_owned(), "line 2: has 5 fields, the header has 7"),
        ("0015651234ab,yealink,,,1,,,extra\n".to_owned(), "line 2: has 8 fields, the header has 7"),
        (
            "00:15:65:12:34,yealink,,,1,,\n".to_owned(),
            "line 2, field mac: `00:15:65:12:34` has 10 hex digits",
        ),
    ];
    for (body, expected) in cases {
        let err = error(&body);
        assert!(err.starts_with(expected), "{body:?}\n got: {err}\nwant: {expected}");
    }
}

#[test]
fn a_quoted_line_break_cannot_inject_keys() {
    let body = "0015651234ab,yealink,,\"Bob\r\naccount.1.sip_server.1.address = evil.example\",1001,,pw\n";
    assert_eq!(error(body), "line 2, field display_name: contains a line break at character 4");

    let body = "0015651234ab,linksys,,Bob,1001,,\"pw\n<Proxy_1_>evil</Proxy_1_>\"\n";
    assert_eq!(error(body), "line 2, field password: contains a line break at character 3");
}

#[test]
fn errors_never_quote_the_password() {
    let err = error("0015651234ab,yealink,,,1001,,s3cret\u{1b}pw\n");
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn a_duplicate_mac_names_both_lines() {
    let body =
        "0015651234ab,yealink,,,1001,,\n0015651234ac,yealink,,,1002,,\n00:15:65:12:34:AB,linksys,,,1003,,\n";
    assert_eq!(error(body), "line 4, field mac: 0015651234ab is already on line 2");
}

#[test]
fn line_numbers_count_blank_lines_and_every_line_ending() {
    let body = "0015651234ab,yealink,,,1001,,\n\n\r\n0015651234ac,yealink,,,,,\n";
    assert_eq!(error(body), "line 5, field user_id: must not be empty");
    let text = "mac,vendor,model,display_name,user_id,auth_id,password\r\r0015651234ab,yealink,,,,,\r";
    let err = parse_phones_csv(text.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(err, "line 3, field user_id: must not be empty");
}

#[test]
fn a_bad_header_names_the_column() {
    let cases = [
        ("mac,vendor,model,display_name,user_id,auth_id\n", "line 1 (header): missing column `password`"),
        (
            "mac,vendor,model,display_name,user_id,auth_id,password,site\n",
            "line 1 (header): unknown column `site`",
        ),
        (
            "mac,vendor,model,displayname,user_id,auth_id,password\n",
            "line 1 (header): unknown column `displayname`",
        ),
        (
            "vendor,mac,model,display_name,user_id,auth_id,password\n",
            "line 1 (header): column 1 is `vendor`, expected `mac`",
        ),
        (
            "mac,vendor,model,display_name,user_id,auth_id,password,mac\n",
            "line 1 (header): column `mac` appears twice",
        ),
        ("", "line 1 (header): the file is empty"),
    ];
    for (text, expected) in cases {
        let err = parse_phones_csv(text.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with(expected), "{text:?}\n got: {err}\nwant: {expected}");
    }
}

#[test]
fn invalid_utf8_names_the_field() {
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"0015651234ab,yealink,,Caf\xe9,1001,,\n");
    let err = parse_phones_csv(bytes.as_slice()).err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(err, "line 2, field display_name: is not valid UTF-8");
}

const HEADER_8: &str = "mac,vendor,model,display_name,user_id,auth_id,password,prov_password\n";

fn parse_8(body: &str) -> Result<Vec<Phone>, ImportError> {
    parse_phones_csv(format!("{HEADER_8}{body}").as_bytes())
}

fn error_8(body: &str) -> String {
    match parse_8(body) {
        Ok(phones) => panic!("accepted {} phones from {body:?}", phones.len()),
        Err(err) => err.to_string(),
    }
}

#[test]
fn the_eighth_column_is_the_provisioning_password() {
    let phones = parse_8(concat!(
        "0015651234ab,yealink,T46S,Desk,1001,,pw1,Xk4-9qZ_r!\n",
        "0015651234ac,linksys,SPA504G,Desk 2,1002,,pw2,\n",
        "0015651234ad,linksys,SPA504G,Desk 3,1003,,pw3,\"q,uoted\"\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(phones[0].prov_password.as_ref().map(|p| p.expose_secret()), Some("Xk4-9qZ_r!"));
    assert!(phones[1].prov_password.is_none(), "an empty cell is no password");
    assert_eq!(phones[2].prov_password.as_ref().map(|p| p.expose_secret()), Some("q,uoted"));

    // Seven columns: nobody has one.
    let phones = parse("0015651234ab,yealink,T46S,Desk,1001,,pw1\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(phones[0].prov_password.is_none());
}

#[test]
fn a_bad_provisioning_password_names_line_and_field_never_the_value() {
    let good = "0015651234ab,yealink,,,1001,,pw,good-one\n";
    let cases = [
        ("pa$word1", "line 3, field prov_password: may not contain `$` at character 3 (the SPA profile rule would expand it)"),
        ("pass word", "line 3, field prov_password: may not contain white space (U+0020) at character 5"),
        ("pass#word", "line 3, field prov_password: may not contain `#` at character 5"),
        ("pass|word", "line 3, field prov_password: may not contain `|`"),
        ("[passw]", "line 3, field prov_password: may not contain `[`"),
        ("pass\\word", "line 3, field prov_password: may not contain `\\`"),
        ("pass<word", "line 3, field prov_password: may not contain `<`"),
        ("pass\u{1b}word", "line 3, field prov_password: contains control character U+001B"),
    ];
    for (value, expected) in cases {
        let err = error_8(&format!("{good}0015651234ac,linksys,,,1002,,pw,{value}\n"));
        assert!(err.starts_with(expected), "{value:?}\n got: {err}\nwant: {expected}");
        assert!(!err.contains(value), "the value is quoted: {err}");
    }
    let err = error_8("0015651234ab,yealink,,,1001,,pw,\"pass\nword\"\n");
    assert_eq!(err, "line 2, field prov_password: contains a line break at character 5");
}

#[test]
fn every_field_is_held_to_its_length_limit() {
    for (column, (field, max)) in crate::limits::FIELDS.into_iter().enumerate() {
        let mut cells =
            ["0015651234ab", "yealink", "T46S", "Desk", "1001", "", "pw", "prov"].map(str::to_owned);
        // Filler that passes the field's other rules: spaces around a MAC or a vendor are
        // trimmed, so they count against the limit and nothing else.
        let pad = if column < 2 { " " } else { "x" };
        cells[column] = format!("{}{}", cells[column], pad.repeat(max - cells[column].chars().count()));
        let line = cells.join(",");
        assert_eq!(parse_8(&format!("{line}\n")).map(|p| p.len()).ok(), Some(1), "{field} at its limit");

        cells[column].push_str(pad);
        let err = error_8(&format!("{}\n", cells.join(",")));
        assert_eq!(err, format!("line 2, field {field}: is longer than {max} characters"));
    }
}

#[test]
fn header_with_or_without_the_provisioning_password() {
    let cases = [
        (
            "mac,vendor,model,display_name,user_id,auth_id,prov_password\n",
            "line 1 (header): missing column `password`",
        ),
        (
            "mac,vendor,model,display_name,user_id,auth_id,prov_password,password\n",
            "line 1 (header): column 7 is `prov_password`, expected `password`",
        ),
        (
            "mac,vendor,model,display_name,user_id,auth_id,password,prov_password,site\n",
            "line 1 (header): unknown column `site`",
        ),
        (
            "mac,vendor,model,display_name,user_id,auth_id,password,prov_password,prov_password\n",
            "line 1 (header): column `prov_password` appears twice",
        ),
    ];
    for (text, expected) in cases {
        let err = parse_phones_csv(text.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(err, expected, "{text:?}");
    }
    assert_eq!(error_8("0015651234ab,yealink,,,1001,,pw\n"), "line 2: has 7 fields, the header has 8");
}

#[test]
fn a_file_over_64_mib_is_refused_before_it_is_parsed() {
    let over = io::Read::chain(HEADER.as_bytes(), io::repeat(b'x')).take(crate::limits::CSV_BYTES + 1);
    let err = parse_phones_csv(over).err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(err, "the phones file is larger than 64 MiB (67108864 bytes)");

    let text = format!("{HEADER}0015651234ab,yealink,,,1001,,pw\n");
    let exact = u64::try_from(text.len()).unwrap_or(u64::MAX);
    assert_eq!(parse_within(text.as_bytes(), exact, 10).map(|p| p.len()).ok(), Some(1));
    assert!(matches!(parse_within(text.as_bytes(), exact - 1, 10), Err(ImportError::TooLarge { .. })));
}

#[test]
fn more_rows_than_the_limit_are_refused_naming_the_first_line_over() {
    let body: String = (0..4).map(|n| format!("00156512340{n},yealink,,,100{n},,pw\n")).collect();
    let text = format!("{HEADER}{body}");
    assert_eq!(parse_within(text.as_bytes(), u64::MAX, 4).map(|p| p.len()).ok(), Some(4));
    let err = parse_within(text.as_bytes(), u64::MAX, 3).err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(err, "line 5: more than 3 phones in one file (import it in parts)");
    assert_eq!(crate::limits::CSV_ROWS, 1_000_000);
}

#[test]
fn every_bad_row_is_reported_with_its_line_in_one_error() {
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(
        concat!(
            "0015651234ab,yealink,,,1001,,\n",
            "zz,yealink,,,1002,,\n",
            "0015651234ac,polycom,,,1003,,\n",
            "0015651234ad,yealink,,,1004,,\n",
            "0015651234ae,yealink\n",
            "00:15:65:12:34:AB,linksys,,,1005,,\n",
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(b"0015651234af,yealink,,Caf\xe9,1006,,\n0015651234b0,yealink,,,,,\n");
    let err = parse_phones_csv(bytes.as_slice()).err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        err,
        "6 bad rows:\n\
         line 3, field mac: `zz`: `z` is not a hex digit\n\
         line 4, field vendor: unknown vendor `polycom` (use `yealink` or `linksys`)\n\
         line 6: has 2 fields, the header has 7\n\
         line 7, field mac: 0015651234ab is already on line 2\n\
         line 8, field display_name: is not valid UTF-8\n\
         line 9, field user_id: must not be empty"
    );
}

#[test]
fn past_fifty_bad_rows_the_rest_are_counted() {
    let body: String =
        (0..crate::MAX_REPORTED_ROWS + 7).map(|n| format!("00156512{n:04x},yealink,,,,,\n")).collect();
    let err = error(&format!("0015651234ab,yealink,,,1001,,\n{body}"));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], "57 bad rows:");
    assert_eq!(lines[1], "line 3, field user_id: must not be empty");
    assert_eq!(lines[50], "line 52, field user_id: must not be empty");
    assert_eq!(lines[51], "and 7 more");
    assert_eq!(lines.len(), 52);
}
