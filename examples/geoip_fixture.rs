//! Writes a small GeoIP database (GeoIP2 Country shape) for benchmarks and manual tests:
//! 198.51.100.0/24 → CN, 192.0.2.0/24 → RU, 203.0.113.0/24 → BR, 2001:db8::/32 → DE.
//! No network and no commercial data: the addresses are the documentation ranges.
//!
//! ```text
//! cargo run --release --example geoip_fixture -- /tmp/countries.mmdb
//! ```

#[derive(serde::Serialize)]
struct Iso<'a> {
    iso_code: &'a str,
}

#[derive(serde::Serialize)]
struct CountryRecord<'a> {
    country: Iso<'a>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: geoip_fixture OUTPUT.mmdb")?;
    let mut writer = mmdb_writer::Writer::new("GeoIP2-Country");
    for (net, code) in [
        ("198.51.100.0/24", "CN"),
        ("192.0.2.0/24", "RU"),
        ("203.0.113.0/24", "BR"),
        ("2001:db8::/32", "DE"),
    ] {
        let record = CountryRecord {
            country: Iso { iso_code: code },
        };
        writer.insert(net.parse::<ipnet::IpNet>()?, &record)?;
    }
    let bytes = writer.to_bytes()?;
    std::fs::write(&path, &bytes)?;
    println!("{path}: {} bytes", bytes.len());
    Ok(())
}
