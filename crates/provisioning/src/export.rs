//! The inventory written back as a phones CSV, in exactly the format the import reads,
//! so that importing an export reproduces the inventory.

use std::io;

use secrecy::ExposeSecret;

use crate::import::{CSV_HEADER, CSV_REQUIRED_COLUMNS};
use crate::phone::Phone;

/// Writes `phones` with the import's header, MACs as 12 lowercase hex digits. The
/// `prov_password` column is written only when some phone has one (an empty cell is
/// none, as on import). The file holds every SIP password.
pub fn write_phones_csv<W: io::Write>(phones: &[Phone], out: W) -> io::Result<()> {
    let with_prov = phones.iter().any(|phone| phone.prov_password.is_some());
    let columns = if with_prov { CSV_HEADER.len() } else { CSV_REQUIRED_COLUMNS };
    let mut csv = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(out);
    csv.write_record(&CSV_HEADER[..columns]).map_err(io::Error::from)?;
    for phone in phones {
        let mac = phone.mac.to_string();
        let mut row = vec![
            mac.as_str(),
            phone.vendor.as_str(),
            &phone.model,
            &phone.display_name,
            &phone.user_id,
            &phone.auth_id,
            phone.password.expose_secret(),
        ];
        if with_prov {
            row.push(phone.prov_password.as_ref().map_or("", ExposeSecret::expose_secret));
        }
        csv.write_record(&row).map_err(io::Error::from)?;
    }
    csv.flush()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use secrecy::ExposeSecret;

    use super::write_phones_csv;
    use crate::parse_phones_csv;

    fn export(phones: &[crate::Phone]) -> String {
        let mut out = Vec::new();
        write_phones_csv(phones, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_export_imports_back_to_the_same_phones() {
        let text = "mac,vendor,model,display_name,user_id,auth_id,password,prov_password\n\
                    00:15:65:12:34:AB,Yealink,T46S,\"Lobby & Co, \"\"front\"\"\",1001,,\"p,w\",Xk4-9qZ\n\
                    0015651234ac,linksys,,Desk,1002,auth1002,pw2,\n";
        let phones = parse_phones_csv(text.as_bytes()).unwrap();
        let exported = export(&phones);
        assert_eq!(
            exported,
            "mac,vendor,model,display_name,user_id,auth_id,password,prov_password\n\
             0015651234ab,yealink,T46S,\"Lobby & Co, \"\"front\"\"\",1001,,\"p,w\",Xk4-9qZ\n\
             0015651234ac,linksys,,Desk,1002,auth1002,pw2,\n"
        );
        let again = parse_phones_csv(exported.as_bytes()).unwrap();
        assert_eq!(export(&again), exported);
        assert_eq!(again[0].password.expose_secret(), "p,w");
        assert!(again[1].prov_password.is_none());
    }

    #[test]
    fn without_provisioning_passwords_the_file_has_seven_columns() {
        let phones = parse_phones_csv("mac,vendor,model,display_name,user_id,auth_id,password\n".as_bytes());
        assert_eq!(export(&phones.unwrap()), "mac,vendor,model,display_name,user_id,auth_id,password\n");
    }
}
