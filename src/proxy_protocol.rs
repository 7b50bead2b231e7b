//! The PROXY protocol (HAProxy's, versions 1 and 2): the real client address of a
//! connection accepted from a trusted proxy.
//!
//! A proxy in TCP mode (HAProxy's `mode tcp`, a cloud load balancer) opens its own
//! connection to the node, so the socket's peer address is the proxy's, not the client's:
//! access rules, GeoIP, session lists and logs would all see the proxy. With `send-proxy`
//! (v1, one text line) or `send-proxy-v2` (binary), the proxy first writes a header naming
//! the client; [`read_header`] reads it at the start of the connection and hands back the
//! bytes read past it, the start of the client's own protocol, for the caller to replay.
//! [`parse`] is the same decision without IO. The spec:
//! <https://www.haproxy.org/download/3.0/doc/proxy-protocol.txt>.
//!
//! Anyone can write such a header, so it is honoured only on connections from proxies the
//! configuration trusts: the caller checks the peer address first and never calls
//! [`read_header`] otherwise. Even from a trusted proxy the header is optional: a
//! connection that does not start with one ([`Parsed::Absent`]) speaks its protocol at
//! once. The two cannot be confused. A v1 header starts with `PROXY ` and a v2 header with
//! the 12 bytes `\r\n\r\n\0\r\nQUIT\n`, while an RTMP client's first byte is 0x03 (C0), a
//! TLS client's 0x16 (a handshake record), and an HTTP request starts with a method token,
//! never `PROXY ` (`PROPFIND` differs at its fourth byte) and never a NUL byte (what tells
//! the v2 signature from stray CRLFs before a request line). So a connection is classified
//! as soon as its first bytes rule both signatures out: after one byte for RTMP and TLS,
//! after at most five for HTTP.
//!
//! Limits: a v1 line is at most 107 bytes (the spec's), a v2 header at most
//! [`MAX_HEADER_BYTES`]; the header must arrive within the caller's deadline. Every
//! failure is the proxy's ([`ProxyHeaderError`]): the connection is closed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Classified, Fault};

/// Longest PROXY header accepted, in bytes. A v1 line is at most 107 bytes by the spec.
/// A v2 header may announce up to 16 + 65,535 bytes, but what proxies send is the 16-byte
/// fixed part, at most 216 bytes of addresses (36 for TCP over IPv6) and a few TLVs (ALPN,
/// SNI, a unique id, TLS details, a cloud's endpoint id): a few hundred bytes. 1 KiB holds
/// that with room to spare; a longer header is refused rather than buffered, since every
/// connection from a proxy holds its header in memory until it is complete.
pub const MAX_HEADER_BYTES: usize = 1024;

/// Longest v1 line, CRLF included (the spec's bound: `PROXY UNKNOWN`, two full IPv6
/// addresses, two 5-digit ports and the spaces between).
const V1_MAX_BYTES: usize = 107;
/// What every v1 header starts with.
const V1_SIGNATURE: &[u8] = b"PROXY ";
/// What every v2 header starts with (`\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A`).
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part of a v2 header: signature, version and command, family and
/// protocol, and the big-endian length of what follows.
const V2_FIXED_BYTES: usize = 16;
/// Where the version/command, the family/protocol and the length bytes are.
const V2_VERSION_AT: usize = 12;
const V2_FAMILY_AT: usize = 13;
const V2_LENGTH_AT: usize = 14;
/// Address block sizes of the v2 families: two addresses, then two ports (for IP).
const V2_IPV4_BYTES: usize = 12;
const V2_IPV6_BYTES: usize = 36;
const V2_UNIX_BYTES: usize = 216;
/// How many bytes [`read_header`] asks for per read: the whole header of most proxies.
/// The buffer never holds more than `MAX_HEADER_BYTES + READ_CHUNK` bytes.
const READ_CHUNK: usize = 512;

// Every header must fit the limit the caller is told of.
const _: () = assert!(V1_MAX_BYTES <= MAX_HEADER_BYTES);
const _: () = assert!(V2_FIXED_BYTES + V2_UNIX_BYTES <= MAX_HEADER_BYTES);

/// What the first bytes of a connection hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes so far are a prefix of a PROXY header (or of its signature): read more.
    Incomplete,
    /// Not a PROXY header: the connection speaks its protocol at once (the bytes are the
    /// client's own).
    Absent,
    /// A complete header of `length` bytes; `client` is the source address it names, None
    /// for `PROXY UNKNOWN` (v1), the LOCAL command (v2, health checks), or address families
    /// other than TCP over IPv4/IPv6 (v2 UNSPEC/UNIX): then the socket's own peer address
    /// stands. IPv4-mapped IPv6 addresses come back as IPv4.
    Header {
        client: Option<SocketAddr>,
        length: usize,
    },
}

/// Why a connection's PROXY header was refused. All but [`ProxyHeaderError::Read`] are
/// the proxy's fault (peer, not retryable); the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The v1 line is not `PROXY TCP4|TCP6|UNKNOWN …` with single spaces and a CRLF.
    #[error("malformed PROXY v1 line: {0}")]
    MalformedV1(&'static str),
    /// A v1 address or port does not parse as its family says (the field is named).
    #[error("PROXY v1 line: bad {0}")]
    BadAddress(&'static str),
    /// The v2 version nibble is not 2.
    #[error("PROXY v2 header: unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The v2 command nibble is neither LOCAL (0) nor PROXY (1).
    #[error("PROXY v2 header: unsupported command {0}")]
    UnsupportedCommand(u8),
    /// The v2 family/protocol byte is none the spec defines.
    #[error("PROXY v2 header: unsupported address family/protocol {0:#04x}")]
    UnsupportedFamily(u8),
    /// The v2 length cannot hold the address block its family needs.
    #[error(
        "PROXY v2 header: {length} bytes cannot hold the address block of family {family:#04x}"
    )]
    AddressBlockTooShort { family: u8, length: usize },
    /// The header is (or announces that it is) longer than `limit` bytes: 107 for v1,
    /// [`MAX_HEADER_BYTES`] for v2.
    #[error("PROXY header longer than {limit} bytes")]
    TooLong { limit: usize },
    /// The connection ended after `received` bytes of a header.
    #[error("the connection closed inside the PROXY header, after {received} bytes")]
    Closed { received: usize },
    /// The header was not complete within the deadline.
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    /// Reading the socket failed (transport).
    #[error("reading the PROXY header failed: {0}")]
    Read(std::io::ErrorKind),
}

impl Classified for ProxyHeaderError {
    fn fault(&self) -> Fault {
        match self {
            ProxyHeaderError::MalformedV1(_)
            | ProxyHeaderError::BadAddress(_)
            | ProxyHeaderError::UnsupportedVersion(_)
            | ProxyHeaderError::UnsupportedCommand(_)
            | ProxyHeaderError::UnsupportedFamily(_)
            | ProxyHeaderError::AddressBlockTooShort { .. }
            | ProxyHeaderError::TooLong { .. }
            | ProxyHeaderError::Closed { .. }
            | ProxyHeaderError::Timeout(_) => Fault::Peer,
            ProxyHeaderError::Read(_) => Fault::Transport,
        }
    }
}

/// Sans-IO: classifies `bytes`, the first bytes received on a connection. Every field is
/// checked as soon as it has arrived, so a bad header fails without waiting for the rest.
pub fn parse(bytes: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let v1 = match bytes.first() {
        None => return Ok(Parsed::Incomplete),
        Some(b'P') => true,
        Some(b'\r') => false,
        Some(_) => return Ok(Parsed::Absent),
    };
    let signature = if v1 { V1_SIGNATURE } else { V2_SIGNATURE };
    if !bytes.iter().zip(signature).all(|(got, want)| got == want) {
        return Ok(Parsed::Absent);
    }
    if bytes.len() < signature.len() {
        return Ok(Parsed::Incomplete);
    }
    if v1 { parse_v1(bytes) } else { parse_v2(bytes) }
}

/// A v1 header (its signature matched): `PROXY <family> <src> <dst> <sport> <dport>\r\n`.
fn parse_v1(bytes: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let window = bytes.get(..V1_MAX_BYTES).unwrap_or(bytes);
    let Some(newline) = window.iter().position(|&byte| byte == b'\n') else {
        return if bytes.len() >= V1_MAX_BYTES {
            Err(ProxyHeaderError::TooLong {
                limit: V1_MAX_BYTES,
            })
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let line = window
        .get(V1_SIGNATURE.len()..newline)
        .and_then(|line| line.strip_suffix(b"\r"))
        .ok_or(ProxyHeaderError::MalformedV1(
            "the line does not end with CRLF",
        ))?;
    let text = std::str::from_utf8(line)
        .ok()
        .filter(|text| text.is_ascii())
        .ok_or(ProxyHeaderError::MalformedV1("not ASCII text"))?;
    let client = v1_client(text)?;
    Ok(Parsed::Header {
        client,
        length: newline + 1,
    })
}

/// The source address of a v1 line's fields (what follows `PROXY `, CRLF removed).
fn v1_client(text: &str) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    // At most 54 fields in 107 bytes.
    let fields: Vec<&str> = text.split(' ').collect();
    let (ipv6, source, destination, source_port, destination_port) = match fields.as_slice() {
        // The receiver ignores whatever follows UNKNOWN (the spec).
        ["UNKNOWN", ..] => return Ok(None),
        [
            family @ ("TCP4" | "TCP6"),
            source,
            destination,
            source_port,
            destination_port,
        ] => (
            *family == "TCP6",
            *source,
            *destination,
            *source_port,
            *destination_port,
        ),
        ["TCP4" | "TCP6", ..] => {
            return Err(ProxyHeaderError::MalformedV1(
                "not 4 fields after the family, separated by single spaces",
            ));
        }
        _ => {
            return Err(ProxyHeaderError::MalformedV1(
                "the family is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    let address = |text: &str| -> Option<IpAddr> {
        if ipv6 {
            text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        } else {
            text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
        }
    };
    let source = address(source).ok_or(ProxyHeaderError::BadAddress("source address"))?;
    address(destination).ok_or(ProxyHeaderError::BadAddress("destination address"))?;
    let port = v1_port(source_port).ok_or(ProxyHeaderError::BadAddress("source port"))?;
    v1_port(destination_port).ok_or(ProxyHeaderError::BadAddress("destination port"))?;
    Ok(Some(SocketAddr::new(source.to_canonical(), port)))
}

/// A v1 port: 1 to 5 decimal digits (no sign, no spaces), 0..=65535.
fn v1_port(text: &str) -> Option<u16> {
    let digits = (1..=5).contains(&text.len()) && text.bytes().all(|byte| byte.is_ascii_digit());
    if digits { text.parse().ok() } else { None }
}

/// A v2 header (its signature matched).
fn parse_v2(bytes: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let Some(&version_command) = bytes.get(V2_VERSION_AT) else {
        return Ok(Parsed::Incomplete);
    };
    let version = version_command >> 4;
    if version != 2 {
        return Err(ProxyHeaderError::UnsupportedVersion(version));
    }
    // LOCAL: the proxy's own connection (a health check); the receiver uses the real
    // endpoints and ignores the family and the address block (the spec).
    let local = match version_command & 0x0F {
        0 => true,
        1 => false,
        command => return Err(ProxyHeaderError::UnsupportedCommand(command)),
    };
    let Some(&family) = bytes.get(V2_FAMILY_AT) else {
        return Ok(Parsed::Incomplete);
    };
    let address_bytes = match family {
        _ if local => 0,
        // UNSPEC: no address.
        0x00 => 0,
        // TCP, or UDP (whose source address is taken the same way), over IPv4 / IPv6.
        0x11 | 0x12 => V2_IPV4_BYTES,
        0x21 | 0x22 => V2_IPV6_BYTES,
        // UNIX stream / datagram: paths, no client address to take.
        0x31 | 0x32 => V2_UNIX_BYTES,
        other => return Err(ProxyHeaderError::UnsupportedFamily(other)),
    };
    let Some(&[high, low]) = bytes.get(V2_LENGTH_AT..V2_FIXED_BYTES) else {
        return Ok(Parsed::Incomplete);
    };
    let rest = usize::from(u16::from_be_bytes([high, low]));
    let length = V2_FIXED_BYTES + rest;
    if length > MAX_HEADER_BYTES {
        return Err(ProxyHeaderError::TooLong {
            limit: MAX_HEADER_BYTES,
        });
    }
    if rest < address_bytes {
        return Err(ProxyHeaderError::AddressBlockTooShort {
            family,
            length: rest,
        });
    }
    // The TLVs after the address block are skipped unread.
    let Some(block) = bytes.get(V2_FIXED_BYTES..length) else {
        return Ok(Parsed::Incomplete);
    };
    let too_short = ProxyHeaderError::AddressBlockTooShort {
        family,
        length: rest,
    };
    let client = match family {
        _ if local => None,
        0x11 | 0x12 => Some(ipv4_source(block).ok_or(too_short)?),
        0x21 | 0x22 => Some(ipv6_source(block).ok_or(too_short)?),
        _ => None,
    };
    Ok(Parsed::Header { client, length })
}

/// The source of a v2 IPv4 address block: source and destination addresses (4 bytes
/// each), then source and destination ports (2 bytes each, big-endian).
fn ipv4_source(block: &[u8]) -> Option<SocketAddr> {
    let ip: [u8; 4] = block.get(0..4)?.try_into().ok()?;
    let port: [u8; 2] = block.get(8..10)?.try_into().ok()?;
    Some(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(ip)),
        u16::from_be_bytes(port),
    ))
}

/// The source of a v2 IPv6 address block (16-byte addresses), IPv4-mapped as IPv4.
fn ipv6_source(block: &[u8]) -> Option<SocketAddr> {
    let ip: [u8; 16] = block.get(0..16)?.try_into().ok()?;
    let port: [u8; 2] = block.get(32..34)?.try_into().ok()?;
    Some(SocketAddr::new(
        Ipv6Addr::from(ip).to_canonical(),
        u16::from_be_bytes(port),
    ))
}

/// Reads from `stream` until the header is complete or known absent, within `deadline`.
/// Returns the client address the header names (None: no header, or one without an
/// address; the socket's peer address stands) and every byte read past the header (the
/// start of the client's own protocol, which the caller replays before reading on).
///
/// Never waits for bytes that can no longer make a PROXY signature: a client that sends
/// a 1-byte RTMP C0 and waits gets an answer. A connection that ends before its first
/// byte is no error (there is no header, and nothing to replay: the protocol sees the end
/// itself); one that ends inside a header is.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    deadline: Duration,
) -> Result<(Option<SocketAddr>, Bytes), ProxyHeaderError> {
    tokio::time::timeout(deadline, read_until_classified(stream))
        .await
        .map_err(|_| ProxyHeaderError::Timeout(deadline))?
}

/// [`read_header`] without its deadline.
async fn read_until_classified<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Option<SocketAddr>, Bytes), ProxyHeaderError> {
    let mut buffer = BytesMut::with_capacity(MAX_HEADER_BYTES + READ_CHUNK);
    loop {
        match parse(&buffer)? {
            Parsed::Absent => return Ok((None, buffer.freeze())),
            Parsed::Header { client, length } => {
                let rest = buffer.split_off(length.min(buffer.len()));
                return Ok((client, rest.freeze()));
            }
            Parsed::Incomplete => {}
        }
        // `parse` says Incomplete only below the limit; the check keeps the bound plain.
        if buffer.len() >= MAX_HEADER_BYTES {
            return Err(ProxyHeaderError::TooLong {
                limit: MAX_HEADER_BYTES,
            });
        }
        let filled = buffer.len();
        buffer.resize(filled + READ_CHUNK, 0);
        let read = stream
            .read(&mut buffer[filled..])
            .await
            .map_err(|error| ProxyHeaderError::Read(error.kind()))?;
        buffer.truncate(filled + read);
        if read == 0 {
            return if filled == 0 {
                Ok((None, Bytes::new()))
            } else {
                Err(ProxyHeaderError::Closed { received: filled })
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io;
    use std::net::{SocketAddrV4, SocketAddrV6};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use proptest::prelude::*;
    use tokio::io::{AsyncWriteExt, ReadBuf};

    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn header(client: Option<SocketAddr>, length: usize) -> Result<Parsed, ProxyHeaderError> {
        Ok(Parsed::Header { client, length })
    }

    /// A v1 line naming `source` and `destination` (of one family).
    fn v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
        let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
        format!(
            "PROXY {family} {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        )
        .into_bytes()
    }

    /// A v2 header of `command` and `family` with `block` and `tlvs` after the fixed part.
    fn v2(command: u8, family: u8, block: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        let rest = u16::try_from(block.len() + tlvs.len()).unwrap();
        header.extend(rest.to_be_bytes());
        header.extend(block);
        header.extend(tlvs);
        header
    }

    /// A v2 PROXY header over TCP naming `source` and `destination` (of one family).
    fn v2_proxy(source: SocketAddr, destination: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
        let ports = [
            source.port().to_be_bytes(),
            destination.port().to_be_bytes(),
        ]
        .concat();
        match (source.ip(), destination.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let block = [&s.octets()[..], &d.octets(), &ports].concat();
                v2(1, 0x11, &block, tlvs)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let block = [&s.octets()[..], &d.octets(), &ports].concat();
                v2(1, 0x21, &block, tlvs)
            }
            _ => panic!("one family for both addresses"),
        }
    }

    /// Two TLVs: ALPN "h2" and a NOOP of 3 bytes.
    const TLVS: &[u8] = &[0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00, 0x03, 0, 0, 0];

    #[test]
    fn v1_tcp4_names_the_client() {
        let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1935\r\n";
        let mut bytes = line.to_vec();
        bytes.extend(b"\x03rtmp");
        assert_eq!(
            parse(&bytes),
            header(Some(addr("192.168.0.1:56324")), line.len())
        );
    }

    #[test]
    fn v1_tcp6_names_the_client_and_unmaps_ipv4() {
        let line = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n";
        assert_eq!(
            parse(line),
            header(Some(addr("[2001:db8::1]:4000")), line.len())
        );
        let mapped = b"PROXY TCP6 ::ffff:10.0.0.7 ::ffff:10.0.0.1 65535 0\r\n";
        assert_eq!(
            parse(mapped),
            header(Some(addr("10.0.0.7:65535")), mapped.len())
        );
        // The longest TCP6 line, all fields at their widest.
        let widest = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
            ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(widest.len(), 104);
        assert!(matches!(
            parse(widest),
            Ok(Parsed::Header {
                client: Some(_),
                length: 104
            })
        ));
    }

    #[test]
    fn v1_unknown_names_no_client() {
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), header(None, 15));
        // The spec's worst case: exactly 107 bytes.
        let longest = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
            ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(longest.len(), V1_MAX_BYTES);
        assert_eq!(parse(longest), header(None, V1_MAX_BYTES));
    }

    #[test]
    fn v2_proxy_ipv4_with_tlvs() {
        let bytes = v2_proxy(addr("203.0.113.9:50000"), addr("10.0.0.1:1935"), TLVS);
        assert_eq!(bytes.len(), 16 + 12 + TLVS.len());
        let mut with_rest = bytes.clone();
        with_rest.extend(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(&with_rest),
            header(Some(addr("203.0.113.9:50000")), bytes.len())
        );
    }

    #[test]
    fn v2_proxy_ipv6_with_tlvs() {
        let bytes = v2_proxy(addr("[2001:db8::9]:443"), addr("[2001:db8::1]:8080"), TLVS);
        assert_eq!(
            parse(&bytes),
            header(Some(addr("[2001:db8::9]:443")), 16 + 36 + TLVS.len())
        );
        let mapped = v2_proxy(addr("[::ffff:198.51.100.4]:7"), addr("[::1]:80"), &[]);
        assert_eq!(parse(&mapped), header(Some(addr("198.51.100.4:7")), 52));
    }

    #[test]
    fn v2_udp_is_read_like_tcp() {
        let mut bytes = v2_proxy(addr("192.0.2.1:5000"), addr("192.0.2.2:6000"), &[]);
        bytes[V2_FAMILY_AT] = 0x12;
        assert_eq!(parse(&bytes), header(Some(addr("192.0.2.1:5000")), 28));
    }

    #[test]
    fn v2_local_unspec_and_unix_name_no_client() {
        // LOCAL (a health check): nothing after the fixed part, or an ignored block.
        assert_eq!(parse(&v2(0, 0x00, &[], &[])), header(None, 16));
        assert_eq!(
            parse(&v2(0, 0x11, &[1; 12], TLVS)),
            header(None, 28 + TLVS.len())
        );
        // LOCAL ignores the family byte altogether.
        assert_eq!(parse(&v2(0, 0x77, &[], &[])), header(None, 16));
        assert_eq!(
            parse(&v2(1, 0x00, &[], TLVS)),
            header(None, 16 + TLVS.len())
        );
        assert_eq!(parse(&v2(1, 0x31, &[b'/'; 216], &[])), header(None, 232));
        assert_eq!(parse(&v2(1, 0x32, &[0; 216], &[])), header(None, 232));
    }

    /// Valid headers of every kind, for the split tests.
    fn valid_headers() -> Vec<Vec<u8>> {
        vec![
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1935\r\n".to_vec(),
            b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2_proxy(addr("203.0.113.9:50000"), addr("10.0.0.1:1935"), TLVS),
            v2_proxy(addr("[2001:db8::9]:443"), addr("[2001:db8::1]:8080"), TLVS),
            v2(0, 0x00, &[], &[]),
        ]
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        for bytes in valid_headers() {
            for split in 0..bytes.len() {
                assert_eq!(
                    parse(&bytes[..split]),
                    Ok(Parsed::Incomplete),
                    "{:?} cut at {split}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            assert!(
                matches!(parse(&bytes), Ok(Parsed::Header { length, .. }) if length == bytes.len())
            );
        }
    }

    #[test]
    fn other_protocols_are_absent() {
        // RTMP C0, alone and with C1; TLS ClientHello; HTTP methods.
        assert_eq!(parse(&[0x03]), Ok(Parsed::Absent));
        assert_eq!(parse(&[0x03; 1537]), Ok(Parsed::Absent));
        assert_eq!(parse(&[0x16, 0x03, 0x01]), Ok(Parsed::Absent));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Ok(Parsed::Absent));
        assert_eq!(parse(b"G"), Ok(Parsed::Absent));
        assert_eq!(parse(b"POST"), Ok(Parsed::Absent));
        assert_eq!(parse(b"PROPFIND /"), Ok(Parsed::Absent));
        assert_eq!(parse(b"PROP"), Ok(Parsed::Absent));
        assert_eq!(parse(b"PROXYX"), Ok(Parsed::Absent));
        // Stray CRLFs, then a request: not the v2 signature.
        assert_eq!(parse(b"\r\n\r\nGET"), Ok(Parsed::Absent));
        // But a shared prefix could still be either.
        assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"\r\n"), Ok(Parsed::Incomplete));
    }

    #[test]
    fn malformed_v1_lines_are_refused() {
        let malformed = |line: &[u8]| matches!(parse(line), Err(ProxyHeaderError::MalformedV1(_)));
        assert!(malformed(b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"));
        assert!(malformed(b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"));
        assert!(malformed(b"PROXY UNKNOWNX\r\n"));
        assert!(malformed(b"PROXY \r\n"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 x\r\n"));
        assert!(malformed(b"PROXY TCP4  1.2.3.4 5.6.7.8 80 443\r\n"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 \r\n"));
        assert!(malformed(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 4\xc3\xa93\r\n"));
        assert!(malformed(b"PROXY \n"));
    }

    #[test]
    fn bad_v1_addresses_and_ports_are_refused() {
        let bad = |line: &[u8], what: &'static str| {
            assert_eq!(
                parse(line),
                Err(ProxyHeaderError::BadAddress(what)),
                "{line:?}"
            );
        };
        bad(
            b"PROXY TCP4 2001:db8::1 5.6.7.8 80 443\r\n",
            "source address",
        );
        bad(b"PROXY TCP4 1.2.3.256 5.6.7.8 80 443\r\n", "source address");
        bad(b"PROXY TCP4 1.2.3.4 ::1 80 443\r\n", "destination address");
        bad(b"PROXY TCP6 1.2.3.4 ::1 80 443\r\n", "source address");
        bad(b"PROXY TCP6 [::1] ::1 80 443\r\n", "source address");
        bad(b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n", "source port");
        bad(b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n", "source port");
        bad(b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 443\r\n", "source port");
        bad(b"PROXY TCP4 1.2.3.4 5.6.7.8 000080 443\r\n", "source port");
        bad(
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 0x1bb\r\n",
            "destination port",
        );
        bad(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 \r\n", "destination port");
    }

    #[test]
    fn overlong_headers_are_refused() {
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_BYTES, b'x');
        let too_long = Err(ProxyHeaderError::TooLong {
            limit: V1_MAX_BYTES,
        });
        assert_eq!(parse(&long), too_long);
        assert_eq!(parse(&long[..V1_MAX_BYTES - 1]), Ok(Parsed::Incomplete));
        // 108 bytes with its CRLF: one too many, even though the line ends.
        long.truncate(V1_MAX_BYTES - 1);
        long.extend(b"\r\n");
        assert_eq!(long.len(), V1_MAX_BYTES + 1);
        assert_eq!(parse(&long), too_long);
        // v2: refused as soon as the length field says so.
        let announced = u16::try_from(MAX_HEADER_BYTES - V2_FIXED_BYTES + 1).unwrap();
        let mut bytes = v2(1, 0x11, &[0; 12], &[]);
        bytes[V2_LENGTH_AT..V2_FIXED_BYTES].copy_from_slice(&announced.to_be_bytes());
        let limit = Err(ProxyHeaderError::TooLong {
            limit: MAX_HEADER_BYTES,
        });
        assert_eq!(parse(&bytes[..V2_FIXED_BYTES]), limit);
        // Exactly the limit is fine.
        let tlvs = vec![0; MAX_HEADER_BYTES - V2_FIXED_BYTES - 12];
        let largest = v2(1, 0x11, &[1; 12], &tlvs);
        assert_eq!(
            parse(&largest),
            header(Some(addr("1.1.1.1:257")), MAX_HEADER_BYTES)
        );
    }

    #[test]
    fn malformed_v2_headers_are_refused() {
        let mut bytes = v2_proxy(addr("192.0.2.1:5000"), addr("192.0.2.2:6000"), &[]);
        // Each field fails as soon as it has arrived.
        bytes[V2_VERSION_AT] = 0x11;
        assert_eq!(
            parse(&bytes[..13]),
            Err(ProxyHeaderError::UnsupportedVersion(1))
        );
        bytes[V2_VERSION_AT] = 0x31;
        assert_eq!(parse(&bytes), Err(ProxyHeaderError::UnsupportedVersion(3)));
        bytes[V2_VERSION_AT] = 0x22;
        assert_eq!(
            parse(&bytes[..13]),
            Err(ProxyHeaderError::UnsupportedCommand(2))
        );
        bytes[V2_VERSION_AT] = 0x21;
        for family in [0x01, 0x10, 0x13, 0x23, 0x30, 0x41, 0xff] {
            bytes[V2_FAMILY_AT] = family;
            assert_eq!(
                parse(&bytes[..14]),
                Err(ProxyHeaderError::UnsupportedFamily(family))
            );
        }
        // The address block must fit inside the announced length.
        assert_eq!(
            parse(&v2(1, 0x11, &[0; 11], &[])),
            Err(ProxyHeaderError::AddressBlockTooShort {
                family: 0x11,
                length: 11
            })
        );
        assert_eq!(
            parse(&v2(1, 0x21, &[0; 12], &[])[..16]),
            Err(ProxyHeaderError::AddressBlockTooShort {
                family: 0x21,
                length: 12
            })
        );
        assert!(matches!(
            parse(&v2(1, 0x31, &[0; 215], &[])),
            Err(ProxyHeaderError::AddressBlockTooShort { .. })
        ));
    }

    #[test]
    fn errors_say_who_is_at_fault() {
        let timeout = ProxyHeaderError::Timeout(Duration::from_secs(5));
        assert_eq!((timeout.fault(), timeout.retryable()), (Fault::Peer, false));
        assert_eq!(
            ProxyHeaderError::Read(io::ErrorKind::ConnectionReset).fault(),
            Fault::Transport
        );
        assert_eq!(
            ProxyHeaderError::TooLong { limit: 107 }.to_string(),
            "PROXY header longer than 107 bytes"
        );
    }

    /// Gives its chunks one read at a time, then the end of the stream.
    struct Chunks(VecDeque<Vec<u8>>);

    impl Chunks {
        fn new(chunks: &[&[u8]]) -> Chunks {
            Chunks(chunks.iter().map(|chunk| chunk.to_vec()).collect())
        }
    }

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(mut chunk) = self.0.pop_front() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push_front(chunk.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// A stream whose reads fail.
    struct Broken;

    impl AsyncRead for Broken {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        }
    }

    const DEADLINE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_header_split_across_reads_is_read_whole_with_what_follows() {
        let after = b"\x03after the header";
        for bytes in valid_headers() {
            let expected = match parse(&bytes) {
                Ok(Parsed::Header { client, .. }) => client,
                other => panic!("{other:?}"),
            };
            for split in 1..bytes.len() {
                let (first, second) = bytes.split_at(split);
                let mut stream = Chunks::new(&[first, second, after]);
                let (client, rest) = read_header(&mut stream, DEADLINE).await.unwrap();
                assert_eq!(client, expected);
                // The reads stop with the header; only what the last read brought is left.
                assert_eq!(rest, Bytes::new());
                let mut stream = Chunks::new(&[first, &[second, after].concat()]);
                let (client, rest) = read_header(&mut stream, DEADLINE).await.unwrap();
                assert_eq!((client, &rest[..]), (expected, &after[..]));
            }
        }
    }

    #[tokio::test]
    async fn bytes_past_the_header_are_returned() {
        let mut bytes = b"PROXY TCP4 198.51.100.1 10.0.0.1 40000 80\r\n".to_vec();
        bytes.extend(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let (client, rest) = read_header(&mut &bytes[..], DEADLINE).await.unwrap();
        assert_eq!(client, Some(addr("198.51.100.1:40000")));
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[tokio::test]
    async fn no_header_gives_back_every_byte_read() {
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let (client, rest) = read_header(&mut &request[..], DEADLINE).await.unwrap();
        assert_eq!((client, &rest[..]), (None, &request[..]));
        // Closed before the first byte: nothing to replay, no error.
        assert_eq!(
            read_header(&mut &b""[..], DEADLINE).await,
            Ok((None, Bytes::new()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_rtmp_c0_is_classified_at_once() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&[0x03]).await.unwrap();
        // The client stays connected and silent: waiting for more would hit the deadline.
        let result = read_header(&mut server, DEADLINE).await;
        assert_eq!(result, Ok((None, Bytes::from_static(&[0x03]))));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_header_split_across_writes_waits_for_the_rest() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let bytes = v2_proxy(addr("[2001:db8::9]:443"), addr("[2001:db8::1]:80"), TLVS);
        let (first, second) = bytes.split_at(20);
        let proxy = async {
            client.write_all(first).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(second).await.unwrap();
            client.write_all(&[0x03]).await.unwrap();
        };
        let (result, ()) = tokio::join!(read_header(&mut server, DEADLINE), proxy);
        let (address, rest) = result.unwrap();
        assert_eq!(address, Some(addr("[2001:db8::9]:443")));
        // The C0 byte came with the end of the header or in a read of its own.
        assert!(rest.is_empty() || rest[..] == [0x03]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_header_that_stops_halfway_hits_the_deadline() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
        let result = read_header(&mut server, DEADLINE).await;
        assert_eq!(result, Err(ProxyHeaderError::Timeout(DEADLINE)));
        drop(client);
    }

    #[tokio::test]
    async fn read_errors_and_early_ends_are_refused() {
        let mut stream = Chunks::new(&[b"PROXY TCP4 ", b"1.2.3.4"]);
        assert_eq!(
            read_header(&mut stream, DEADLINE).await,
            Err(ProxyHeaderError::Closed { received: 18 })
        );
        assert_eq!(
            read_header(&mut Broken, DEADLINE).await,
            Err(ProxyHeaderError::Read(io::ErrorKind::ConnectionReset))
        );
        let malformed = b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\nrest";
        assert!(matches!(
            read_header(&mut &malformed[..], DEADLINE).await,
            Err(ProxyHeaderError::MalformedV1(_))
        ));
        // A line that never ends stops at the v1 limit, not at the buffer's.
        let endless = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 4096]].concat();
        assert_eq!(
            read_header(&mut &endless[..], DEADLINE).await,
            Err(ProxyHeaderError::TooLong {
                limit: V1_MAX_BYTES
            })
        );
    }

    /// Two endpoints of one family; IPv4-mapped IPv6 sources too.
    fn endpoints() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
        prop_oneof![
            (any::<SocketAddrV4>(), any::<SocketAddrV4>())
                .prop_map(|(s, d)| (SocketAddr::V4(s), SocketAddr::V4(d))),
            (any::<SocketAddrV6>(), any::<SocketAddrV6>())
                .prop_map(|(s, d)| (SocketAddr::V6(s), SocketAddr::V6(d))),
            (any::<SocketAddrV4>(), any::<SocketAddrV6>()).prop_map(|(s, d)| {
                let mapped = SocketAddr::new(IpAddr::V6(s.ip().to_ipv6_mapped()), s.port());
                (mapped, SocketAddr::V6(d))
            }),
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_past_a_signature(
            version_2 in any::<bool>(),
            tail in proptest::collection::vec(any::<u8>(), 0..1200),
        ) {
            let signature = if version_2 { V2_SIGNATURE } else { V1_SIGNATURE };
            let bytes = [signature, &tail].concat();
            for end in 0..=bytes.len().min(40) {
                let _ = parse(&bytes[..end]);
            }
            if let Ok(Parsed::Header { length, .. }) = parse(&bytes) {
                prop_assert!(length <= bytes.len() && length <= MAX_HEADER_BYTES);
            }
        }

        #[test]
        fn headers_round_trip(
            (source, destination) in endpoints(),
            tlvs in proptest::collection::vec(any::<u8>(), 0..64),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
            version_2 in any::<bool>(),
        ) {
            let header = if version_2 {
                v2_proxy(source, destination, &tlvs)
            } else {
                v1(source, destination)
            };
            let bytes = [&header[..], &tail].concat();
            let client = SocketAddr::new(source.ip().to_canonical(), source.port());
            prop_assert_eq!(
                parse(&bytes),
                Ok(Parsed::Header { client: Some(client), length: header.len() })
            );
        }
    }
}
