//! How long a generation takes to render, swap in, drop and write to a folder.
//!
//!     cargo run --release -p switchback-provisioning --example render_timing [COUNT...]
//!
//! Defaults to 1,000 and 100,000 phones, half Yealink, half SPA. Prints timings; asserts nothing.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use switchback_core::{Config, Role, Route};
use switchback_provisioning::{
    write_generation, ActiveSites, Generation, Generations, Mac, Phone, RenderSettings, Vendor,
};

const CONFIG: &str = r#"
[server]
public_url = "http://prov.example.net:8080"

[[sites]]
name = "chicago"
role = "primary"
softswitch = { host = "sip1.chi.example.net" }
database = { url = "postgres://monitor@db1.chi.example.net/voip" }
stun = { host = "stun1.chi.example.net" }

[[sites]]
name = "virginia"
role = "backup"
softswitch = { host = "sip1.va.example.net" }
database = { url = "mysql://monitor@db1.va.example.net/voip" }
stun = { host = "stun1.va.example.net" }
"#;

fn phones(count: u32) -> Vec<Phone> {
    (0..count)
        .map(|n| {
            let b = n.to_be_bytes();
            Phone {
                mac: Mac::new([0x00, 0x15, b[0], b[1], b[2], b[3]]),
                vendor: if n % 2 == 0 { Vendor::Yealink } else { Vendor::Linksys },
                model: "T46S".to_owned(),
                display_name: format!("Desk {n} & Co"),
                user_id: format!("{}", 100_000 + n),
                auth_id: if n % 3 == 0 { format!("auth{n}") } else { String::new() },
                password: SecretString::from(format!("pw-{n:08x}-secret")),
                prov_password: None,
            }
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:8.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counts: Vec<u32> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let counts = if counts.is_empty() { vec![1_000, 100_000] } else { counts };
    let config = Config::parse(CONFIG)?;
    let settings = RenderSettings::from_config(&config);
    let primary = ActiveSites::primary(&config);
    let failed_over = ActiveSites::from_config(&config, |route| match route {
        Route::Sip => Role::Backup,
        Route::Stun => Role::Primary,
    });
    println!("rayon threads: {}", rayon::current_num_threads());

    for count in counts {
        let inventory = phones(count);
        let first = Generation::render(1, &primary, &settings, &inventory)?;
        let generations = Generations::new(first);

        let started = Instant::now();
        let next = Generation::render(2, &failed_over, &settings, &inventory)?;
        let rendered = started.elapsed();
        let bytes: usize = next.phone_files().map(|(_, f)| f.bytes().len()).sum();

        let started = Instant::now();
        let old = generations.swap(next);
        let swapped = started.elapsed();

        let started = Instant::now();
        drop(old);
        let dropped = started.elapsed();

        let dir = tempfile::tempdir()?;
        let started = Instant::now();
        let report = write_generation(dir.path(), &generations.current())?;
        let first_write = started.elapsed();
        let started = Instant::now();
        let again = write_generation(dir.path(), &generations.current())?;
        let unchanged_write = started.elapsed();

        println!("{count} phones ({} KiB of files):", bytes / 1024);
        println!("  render        {}", ms(rendered));
        println!("  swap          {}", ms(swapped));
        println!("  drop old      {}", ms(dropped));
        println!("  write dir     {} ({} written)", ms(first_write), report.written);
        println!("  rewrite dir   {} ({} unchanged)", ms(unchanged_write), again.unchanged);
    }
    Ok(())
}
