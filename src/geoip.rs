//! Country of a client address, from a MaxMind-format database named by `geoip PATH;`.
//!
//! Two record shapes exist in the wild and both are read: MaxMind's GeoIP2/GeoLite2
//! (`country.iso_code`, Country and City editions) and ip-location-db's
//! (`country_code`). The file is read once at start into memory and bounded in size;
//! a lookup is a tree walk over that buffer with no allocation, so the balancer can do it
//! on every request. No database is bundled (licences; data ages): the operator brings
//! one, and without it country lists are ignored with a start-up warning.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{MaxMindDbError, PathElement, Reader};

use crate::error::{Classified, Fault};

/// Largest database read (GeoLite2-City is ~70 MB; a larger file is not a country DB).
pub const MAX_GEOIP_DB_BYTES: u64 = 512 * 1024 * 1024;

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// `code` if it is two ASCII letters (any case).
    pub fn parse(code: &str) -> Option<Country> {
        match code.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// Serialized as its code (`"RU"`), the API's spelling.
impl serde::Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Country {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a database could not be used. Always the host's fault (a missing or broken file).
#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    #[error("geoip database {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("geoip database {path}: {size} bytes, more than the {MAX_GEOIP_DB_BYTES} accepted")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("geoip database {path}: not a MaxMind DB file: {source}")]
    Invalid {
        path: PathBuf,
        source: MaxMindDbError,
    },
}

impl Classified for GeoIpError {
    /// The operator's file on this host; reading it again finds the same bytes.
    fn fault(&self) -> Fault {
        Fault::Local
    }
}

/// A loaded database.
pub struct GeoIp {
    reader: Reader<Vec<u8>>,
    /// What the file says it is (`GeoLite2-Country`, …), for the log.
    pub database_type: String,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("database_type", &self.database_type)
            .finish()
    }
}

const ISO_CODE_PATH: [PathElement<'static>; 2] =
    [PathElement::Key("country"), PathElement::Key("iso_code")];
const COUNTRY_CODE_PATH: [PathElement<'static>; 1] = [PathElement::Key("country_code")];

impl GeoIp {
    /// Reads the database at `path`.
    pub fn open(path: &Path) -> Result<GeoIp, GeoIpError> {
        let read_error = |source| GeoIpError::Read {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > MAX_GEOIP_DB_BYTES {
            return Err(GeoIpError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        GeoIp::from_bytes(bytes).map_err(|source| GeoIpError::Invalid {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A database held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoIp, MaxMindDbError> {
        let reader = Reader::from_source(bytes)?;
        let database_type = reader.metadata().database_type.clone();
        Ok(GeoIp {
            reader,
            database_type,
        })
    }

    /// The country of `ip`, if the database knows it. An IPv4-mapped IPv6 address is
    /// looked up as IPv4; a damaged record counts as unknown.
    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        let result = self.reader.lookup(ip.to_canonical()).ok()?;
        if !result.has_data() {
            return None;
        }
        let code = match result.decode_path::<&str>(&ISO_CODE_PATH) {
            Ok(Some(code)) => Some(code),
            _ => result
                .decode_path::<&str>(&COUNTRY_CODE_PATH)
                .ok()
                .flatten(),
        };
        code.and_then(Country::parse)
    }
}

/// A database of `(network, country)` entries in MaxMind's shape, for unit tests.
#[cfg(test)]
pub(crate) fn test_database(entries: &[(&str, &str)]) -> GeoIp {
    let mut writer = mmdb_writer::Writer::new("GeoIP2-Country");
    for (net, code) in entries {
        let record = tests::MaxMindRecord {
            country: tests::Iso { iso_code: code },
        };
        writer
            .insert(net.parse::<ipnet::IpNet>().expect("a network"), &record)
            .expect("insertable");
    }
    GeoIp::from_bytes(writer.to_bytes().expect("writable")).expect("readable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    pub(super) struct Iso<'a> {
        pub(super) iso_code: &'a str,
    }
    #[derive(serde::Serialize)]
    pub(super) struct MaxMindRecord<'a> {
        pub(super) country: Iso<'a>,
    }
    #[derive(serde::Serialize)]
    struct IpLocationRecord<'a> {
        country_code: &'a str,
    }

    #[test]
    fn both_record_shapes_and_mapped_addresses_resolve() {
        let mut writer = mmdb_writer::Writer::new("GeoIP2-Country");
        let net = |text: &str| text.parse::<ipnet::IpNet>().unwrap();
        let ru = MaxMindRecord {
            country: Iso { iso_code: "RU" },
        };
        writer.insert(net("192.0.2.0/24"), &ru).unwrap();
        let de = MaxMindRecord {
            country: Iso { iso_code: "de" },
        };
        writer.insert(net("2001:db8::/32"), &de).unwrap();
        let cn = IpLocationRecord { country_code: "CN" };
        writer.insert(net("198.51.100.0/24"), &cn).unwrap();
        let geoip = GeoIp::from_bytes(writer.to_bytes().unwrap()).unwrap();
        let country = |ip: &str| geoip.country(ip.parse().unwrap()).map(|c| c.to_string());
        assert_eq!(country("192.0.2.7").as_deref(), Some("RU"));
        assert_eq!(country("::ffff:192.0.2.7").as_deref(), Some("RU"));
        assert_eq!(country("2001:db8::1").as_deref(), Some("DE"), "upper-cased");
        assert_eq!(country("198.51.100.9").as_deref(), Some("CN"));
        assert_eq!(country("203.0.113.1"), None);
    }

    #[test]
    fn a_broken_or_missing_file_says_so() {
        let dir = std::env::temp_dir().join(format!("flotilla-geoip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.mmdb");
        std::fs::write(&junk, b"not a database").unwrap();
        let error = GeoIp::open(&junk).unwrap_err().to_string();
        assert!(error.contains("not a MaxMind DB file"), "{error}");
        let error = GeoIp::open(&dir.join("missing.mmdb"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot read it"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn country_codes_are_two_letters() {
        assert_eq!(Country::parse("ru").unwrap().as_str(), "RU");
        assert!(Country::parse("RUS").is_none());
        assert!(Country::parse("1A").is_none());
        assert!(Country::parse("").is_none());
    }
}
