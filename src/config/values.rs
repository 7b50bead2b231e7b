//! Typed values of the configuration language and their canonical spelling.
//!
//! Each type parses the forms Flussonic's documentation uses and prints one canonical form
//! that parses back to the same value (a property test holds every type to that).
//! Multipliers are decimal (`10G` = 10·10⁹), as the spec recommends for both bitrates and
//! sizes, so `total_bandwidth 10G` and `max_bitrate=10G` mean the same number.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::Serialize;

use crate::error::{Classified, Fault};

/// Why a word is not a valid value. The operator's config is at fault for every one; the
/// texts are the diagnostics' messages (the schema adds the span and "expected …").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A number with units lacks the number (`M`).
    #[error("`{0}` does not start with a number")]
    NotANumber(String),
    /// The number overflows 64 bits, alone or with its multiplier.
    #[error("`{0}` is too large")]
    TooLarge(String),
    /// A bitrate or size suffix other than K, M, G, T.
    #[error("`{text}` has an unknown unit `{unit}`")]
    UnknownUnit { text: String, unit: String },
    /// A duration suffix other than ms, s, m, h, d.
    #[error("`{text}` has an unknown unit `{unit}` (use ms, s, m, h or d)")]
    UnknownDurationUnit { text: String, unit: String },
    /// Past [`MAX_DURATION_MS`].
    #[error("`{0}` is longer than ten years")]
    TooLong(String),
    /// Not 0 to 100, with or without `%`.
    #[error("`{0}` is not a percentage from 0 to 100")]
    NotAPercentage(String),
    /// Not true/false, on/off, yes/no.
    #[error("`{0}` is not a boolean")]
    NotABoolean(String),
    /// Not a whole number, or outside its type's range.
    #[error("`{0}` is not a whole number in range")]
    NotAWholeNumber(String),
    /// Neither a network, a short network nor an address.
    #[error("`{0}` is not a network address")]
    NotANetwork(String),
    /// An empty key or password.
    #[error("a secret cannot be empty")]
    EmptySecret,
    /// A word that is not one of the directive's choices.
    #[error("`{text}` is not one of: {choices}")]
    NotAChoice { text: String, choices: &'static str },
}

impl Classified for ValueError {
    fn fault(&self) -> Fault {
        Fault::Config
    }
}

/// A value that can appear as one word of a directive.
pub trait Value: Sized {
    /// What a valid value looks like, for "expected …" messages.
    const EXPECTED: &'static str;
    fn parse_value(text: &str) -> Result<Self, ValueError>;
    fn render(&self) -> String;
}

/// Splits `40M` into (40, "M"); the number part may be empty (then the input is invalid).
fn split_number(text: &str) -> (&str, &str) {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(digits_end)
}

fn parse_u64(digits: &str, text: &str) -> Result<u64, ValueError> {
    if digits.is_empty() {
        return Err(ValueError::NotANumber(text.into()));
    }
    digits
        .parse::<u64>()
        .map_err(|_| ValueError::TooLarge(text.into()))
}

/// Scales `number` by a K/M/G/T multiplier (decimal), refusing overflow.
fn scale(number: u64, suffix: &str, text: &str) -> Result<u64, ValueError> {
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" | "K" => 1_000,
        "m" | "M" => 1_000_000,
        "g" | "G" => 1_000_000_000,
        "t" | "T" => 1_000_000_000_000,
        _ => {
            return Err(ValueError::UnknownUnit {
                text: text.into(),
                unit: suffix.into(),
            });
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| ValueError::TooLarge(text.into()))
}

/// The largest decimal suffix that divides `value` exactly.
fn render_scaled(value: u64) -> String {
    for (multiplier, suffix) in [
        (1_000_000_000_000, "T"),
        (1_000_000_000, "G"),
        (1_000_000, "M"),
        (1_000, "K"),
    ] {
        if value != 0 && value.is_multiple_of(multiplier) {
            return format!("{}{suffix}", value / multiplier);
        }
    }
    value.to_string()
}

/// A bitrate in bits per second (`40M`, `10G`, `500K`, bare = bit/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Bitrate {
    pub bits_per_second: u64,
}

impl Value for Bitrate {
    const EXPECTED: &'static str = "a bitrate such as 40M, 10G, 500K or a bare number of bit/s";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        let (digits, suffix) = split_number(text);
        let number = parse_u64(digits, text)?;
        // `k`/`m`/`g` are accepted; Flussonic's transcoder docs write `vb=2048k`.
        let suffix = suffix.trim_end_matches("bps").trim_end_matches("bit");
        Ok(Bitrate {
            bits_per_second: scale(number, suffix, text)?,
        })
    }
    fn render(&self) -> String {
        render_scaled(self.bits_per_second)
    }
}

/// A size in bytes (`400G`, `20G`, bare = bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ByteSize {
    pub bytes: u64,
}

impl Value for ByteSize {
    const EXPECTED: &'static str = "a size such as 20G, 400M or a bare number of bytes";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        let (digits, suffix) = split_number(text);
        let number = parse_u64(digits, text)?;
        let suffix = suffix.strip_suffix(['b', 'B']).unwrap_or(suffix);
        Ok(ByteSize {
            bytes: scale(number, suffix, text)?,
        })
    }
    fn render(&self) -> String {
        render_scaled(self.bytes)
    }
}

/// A duration. In option values a bare integer means seconds (`source_timeout 3`);
/// suffixes `ms`, `s`, `m`, `h`, `d` are accepted everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Seconds {
    pub millis: u64,
}

/// Longest duration accepted anywhere: ten years. Nothing in a media server waits longer,
/// and the cap keeps every later multiplication far from overflow.
pub const MAX_DURATION_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

fn parse_duration_ms(text: &str, bare_unit_ms: u64) -> Result<u64, ValueError> {
    let (digits, suffix) = split_number(text);
    let number = parse_u64(digits, text)?;
    let unit_ms = match suffix {
        "" => bare_unit_ms,
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(ValueError::UnknownDurationUnit {
                text: text.into(),
                unit: suffix.into(),
            });
        }
    };
    number
        .checked_mul(unit_ms)
        .filter(|ms| *ms <= MAX_DURATION_MS)
        .ok_or_else(|| ValueError::TooLong(text.into()))
}

fn render_duration_ms(millis: u64) -> String {
    if millis == 0 {
        return "0s".into();
    }
    for (unit_ms, suffix) in [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ] {
        if millis.is_multiple_of(unit_ms) {
            return format!("{}{suffix}", millis / unit_ms);
        }
    }
    format!("{millis}ms")
}

impl Seconds {
    pub fn from_secs(seconds: u64) -> Seconds {
        Seconds {
            millis: seconds * 1000,
        }
    }
    pub fn as_duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }
}

impl Value for Seconds {
    const EXPECTED: &'static str = "a duration such as 30s, 5m, 48h, 2d (a bare number is seconds)";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        parse_duration_ms(text, 1000).map(|millis| Seconds { millis })
    }
    fn render(&self) -> String {
        render_duration_ms(self.millis)
    }
}

/// Values below this are read as seconds in [`Millis`]: the old cluster-ingest docs write
/// `fetch_timeout 1;` meaning one second, and nobody polls a peer every 99 ms.
pub const MILLIS_SECONDS_THRESHOLD: u64 = 100;

/// A duration whose bare numbers are milliseconds, except that bare numbers below
/// [`MILLIS_SECONDS_THRESHOLD`] are seconds (`fetch_timeout`, `stale_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Millis {
    pub millis: u64,
}

impl Value for Millis {
    const EXPECTED: &'static str =
        "milliseconds such as 3000 (bare numbers below 100 are seconds), or 3s";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        let bare = text.bytes().all(|b| b.is_ascii_digit());
        let bare_unit_ms = match text.parse::<u64>() {
            Ok(n) if bare && n < MILLIS_SECONDS_THRESHOLD => 1000,
            _ => 1,
        };
        parse_duration_ms(text, bare_unit_ms).map(|millis| Millis { millis })
    }
    fn render(&self) -> String {
        if self.millis >= MILLIS_SECONDS_THRESHOLD {
            self.millis.to_string()
        } else {
            format!("{}ms", self.millis)
        }
    }
}

/// A duration in seconds, or `false` meaning "never" (`clients_timeout false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Timeout {
    After(Seconds),
    #[serde(serialize_with = "serialize_false")]
    Never,
}

fn serialize_false<S: serde::Serializer>(serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bool(false)
}

impl Value for Timeout {
    const EXPECTED: &'static str = "a duration such as 30 or 30s, or false";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        match text {
            "false" | "off" | "never" => Ok(Timeout::Never),
            _ => Seconds::parse_value(text).map(Timeout::After),
        }
    }
    fn render(&self) -> String {
        match self {
            Timeout::After(seconds) => seconds.render(),
            Timeout::Never => "false".into(),
        }
    }
}

/// A percentage, `90%` or `90`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Percent {
    pub percent: u8,
}

impl Value for Percent {
    const EXPECTED: &'static str = "a percentage from 0 to 100, such as 80%";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        let digits = text.strip_suffix('%').unwrap_or(text);
        match digits.parse::<u8>() {
            Ok(percent) if percent <= 100 => Ok(Percent { percent }),
            _ => Err(ValueError::NotAPercentage(text.into())),
        }
    }
    fn render(&self) -> String {
        format!("{}%", self.percent)
    }
}

/// What a node does with a viewer of a stream another node has (`cluster_play`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterPlay {
    /// Serve the viewer here, relaying the stream from its owner over the mesh.
    Relay,
    /// Send the viewer to the owner (HTTP 302, RTMP 302 or relay per `rtmp_redirect`).
    Redirect,
}

impl Value for ClusterPlay {
    const EXPECTED: &'static str = "relay or redirect";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        match text {
            "relay" => Ok(ClusterPlay::Relay),
            "redirect" => Ok(ClusterPlay::Redirect),
            _ => Err(ValueError::NotAChoice {
                text: text.into(),
                choices: Self::EXPECTED,
            }),
        }
    }
    fn render(&self) -> String {
        match self {
            ClusterPlay::Relay => "relay".into(),
            ClusterPlay::Redirect => "redirect".into(),
        }
    }
}

/// `true`/`false`; `on`/`off` and `yes`/`no` are accepted too (`cmaf on;`).
impl Value for bool {
    const EXPECTED: &'static str = "true or false";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        match text {
            "true" | "on" | "yes" => Ok(true),
            "false" | "off" | "no" => Ok(false),
            _ => Err(ValueError::NotABoolean(text.into())),
        }
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

/// `logrequests true|false|PATH;`: Flussonic's switch, or where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum AccessLog {
    /// `true` (or no argument): the default file, [`AccessLog::DEFAULT_PATH`].
    On(bool),
    /// A file (relative: beside the config file).
    File(String),
}

impl AccessLog {
    /// Where `logrequests true;` writes, like Flussonic's /var/log/flussonic/access.log.
    pub const DEFAULT_PATH: &'static str = "/var/log/flotilla/access.log";

    /// The file to write, if any (as written: relative paths not yet resolved).
    pub fn path(&self) -> Option<&str> {
        match self {
            AccessLog::On(true) => Some(Self::DEFAULT_PATH),
            AccessLog::On(false) => None,
            AccessLog::File(path) => Some(path),
        }
    }
}

impl Value for AccessLog {
    const EXPECTED: &'static str = "true, false or a file path";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        match bool::parse_value(text) {
            Ok(on) => Ok(AccessLog::On(on)),
            Err(_) => Ok(AccessLog::File(text.to_string())),
        }
    }
    fn render(&self) -> String {
        match self {
            AccessLog::On(on) => on.to_string(),
            AccessLog::File(path) => path.clone(),
        }
    }
}

macro_rules! integer_value {
    ($($ty:ty),*) => {$(
        impl Value for $ty {
            const EXPECTED: &'static str = concat!("a whole number (", stringify!($ty), ")");
            fn parse_value(text: &str) -> Result<Self, ValueError> {
                text.parse::<$ty>().map_err(|_| ValueError::NotAWholeNumber(text.into()))
            }
            fn render(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
integer_value!(u8, u16, u32, u64);

impl Value for String {
    const EXPECTED: &'static str = "a word or a quoted string";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        Ok(text.to_string())
    }
    fn render(&self) -> String {
        self.clone()
    }
}

/// An IP network. Short forms with omitted zero octets are accepted (`10/8`,
/// `192.168/16`), as is a bare address (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cidr(pub IpNet);

impl Value for Cidr {
    const EXPECTED: &'static str = "a network such as 10/8, 192.168/16, 10.0.0.0/8 or an address";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        let error = || ValueError::NotANetwork(text.into());
        if let Ok(net) = IpNet::from_str(text) {
            return Ok(Cidr(net.trunc()));
        }
        if let Ok(address) = IpAddr::from_str(text) {
            return Ok(Cidr(IpNet::from(address)));
        }
        let (address, prefix) = text.split_once('/').ok_or_else(error)?;
        let prefix: u8 = prefix.parse().map_err(|_| error())?;
        let octets: Vec<&str> = address.split('.').collect();
        if octets.is_empty() || octets.len() > 4 || prefix > 32 {
            return Err(error());
        }
        let mut bytes = [0u8; 4];
        for (slot, octet) in bytes.iter_mut().zip(&octets) {
            *slot = octet.parse().map_err(|_| error())?;
        }
        let net = ipnet::Ipv4Net::new(Ipv4Addr::from(bytes), prefix).map_err(|_| error())?;
        Ok(Cidr(IpNet::V4(net.trunc())))
    }
    fn render(&self) -> String {
        self.0.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A secret (cluster key, password). Printed in config text (the operator's own file) but
/// never in logs or in `Debug` output, and redacted from the API for non-admin readers.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl Value for Secret {
    const EXPECTED: &'static str = "a secret word or quoted string";
    fn parse_value(text: &str) -> Result<Self, ValueError> {
        if text.is_empty() {
            return Err(ValueError::EmptySecret);
        }
        Ok(Secret(text.to_string()))
    }
    fn render(&self) -> String {
        self.0.clone()
    }
}

/// A comma-separated list (`countries=RU,CN`).
pub fn parse_list<T: Value>(text: &str) -> Result<Vec<T>, ValueError> {
    text.split(',')
        .filter(|item| !item.is_empty())
        .map(T::parse_value)
        .collect()
}

pub fn render_list<T: Value>(items: &[T]) -> String {
    items
        .iter()
        .map(Value::render)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bitrates() {
        assert_eq!(
            Bitrate::parse_value("40M").unwrap().bits_per_second,
            40_000_000
        );
        assert_eq!(
            Bitrate::parse_value("10G").unwrap().bits_per_second,
            10_000_000_000
        );
        assert_eq!(
            Bitrate::parse_value("2048k").unwrap().bits_per_second,
            2_048_000
        );
        assert_eq!(
            Bitrate::parse_value("40000000").unwrap().bits_per_second,
            40_000_000
        );
        assert!(Bitrate::parse_value("40X").is_err());
        assert!(Bitrate::parse_value("M").is_err());
        assert!(Bitrate::parse_value("99999999999999999999G").is_err());
        assert_eq!(Bitrate::parse_value("40000000").unwrap().render(), "40M");
    }

    #[test]
    fn durations() {
        assert_eq!(Seconds::parse_value("30").unwrap().millis, 30_000);
        assert_eq!(Seconds::parse_value("2d").unwrap().millis, 172_800_000);
        assert_eq!(Seconds::parse_value("48h").unwrap().render(), "2d");
        assert_eq!(Seconds::parse_value("1500ms").unwrap().render(), "1500ms");
        assert!(Seconds::parse_value("5y").is_err());
        assert!(Seconds::parse_value("99999999d").is_err());
    }

    #[test]
    fn millis_read_small_bare_numbers_as_seconds() {
        assert_eq!(Millis::parse_value("1").unwrap().millis, 1_000);
        assert_eq!(Millis::parse_value("99").unwrap().millis, 99_000);
        assert_eq!(Millis::parse_value("100").unwrap().millis, 100);
        assert_eq!(Millis::parse_value("3000").unwrap().millis, 3_000);
        assert_eq!(Millis::parse_value("50ms").unwrap().millis, 50);
        assert_eq!(Millis { millis: 50 }.render(), "50ms");
    }

    #[test]
    fn short_cidrs() {
        let cases = [
            ("10/8", "10.0.0.0/8"),
            ("192.168/16", "192.168.0.0/16"),
            ("172.16/24", "172.16.0.0/24"),
            ("10.1.2.3", "10.1.2.3/32"),
            ("::1", "::1/128"),
            ("fd00::/8", "fd00::/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
        ];
        for (input, canonical) in cases {
            assert_eq!(
                Cidr::parse_value(input).unwrap().render(),
                canonical,
                "{input}"
            );
        }
        for bad in ["10/33", "300/8", "a.b/8", "1.2.3.4.5/8", "/8"] {
            assert!(Cidr::parse_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_and_timeout() {
        assert_eq!(Percent::parse_value("90%").unwrap().percent, 90);
        assert_eq!(Percent::parse_value("90").unwrap().percent, 90);
        assert!(Percent::parse_value("101%").is_err());
        assert_eq!(Timeout::parse_value("false").unwrap(), Timeout::Never);
        assert_eq!(
            Timeout::parse_value("30").unwrap(),
            Timeout::After(Seconds::from_secs(30))
        );
    }

    #[test]
    fn errors_are_the_configs_and_keep_their_diagnostic_texts() {
        let unit = Bitrate::parse_value("40X").unwrap_err();
        assert_eq!(unit.to_string(), "`40X` has an unknown unit `X`");
        assert_eq!((unit.fault(), unit.retryable()), (Fault::Config, false));
        assert_eq!(
            Seconds::parse_value("5y").unwrap_err().to_string(),
            "`5y` has an unknown unit `y` (use ms, s, m, h or d)"
        );
        assert_eq!(
            Seconds::parse_value("99999999d").unwrap_err(),
            ValueError::TooLong("99999999d".into())
        );
        assert_eq!(
            Secret::parse_value("").unwrap_err(),
            ValueError::EmptySecret
        );
        assert_eq!(
            parse_list::<Percent>("80,101").unwrap_err().to_string(),
            "`101` is not a percentage from 0 to 100"
        );
    }

    proptest! {
        #[test]
        fn bitrate_round_trips(bits in 0u64..u64::MAX / 1_000_000_000_000) {
            let value = Bitrate { bits_per_second: bits };
            prop_assert_eq!(Bitrate::parse_value(&value.render()).unwrap(), value);
        }

        #[test]
        fn size_round_trips(bytes in 0u64..u64::MAX / 1_000_000_000_000) {
            let value = ByteSize { bytes };
            prop_assert_eq!(ByteSize::parse_value(&value.render()).unwrap(), value);
        }

        #[test]
        fn durations_round_trip(millis in 0u64..MAX_DURATION_MS) {
            let seconds = Seconds { millis };
            prop_assert_eq!(Seconds::parse_value(&seconds.render()).unwrap(), seconds);
            let millis = Millis { millis };
            prop_assert_eq!(Millis::parse_value(&millis.render()).unwrap(), millis);
        }

        #[test]
        fn value_parsers_never_panic(text in ".{0,40}") {
            let _ = Bitrate::parse_value(&text);
            let _ = ByteSize::parse_value(&text);
            let _ = Seconds::parse_value(&text);
            let _ = Millis::parse_value(&text);
            let _ = Cidr::parse_value(&text);
            let _ = Percent::parse_value(&text);
        }
    }
}
