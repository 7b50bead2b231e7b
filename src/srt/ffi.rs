//! libsrt, the reference SRT implementation, loaded at run time.
//!
//! Why libsrt and why loaded at run time: see `super` (the module header). This file is
//! the only place flotilla calls C: each `unsafe` block says what it relies on. The
//! library is opened once per process (it keeps process-wide state of its own: its
//! receive queues and garbage collector threads, started by `srt_startup`), by its
//! Debian sonames; a machine without it runs every other input and output, and an SRT
//! listener or input fails with [`SrtError::Unavailable`].
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use libloading::Library;

/// libsrt's socket handle.
pub type RawSocket = i32;

/// The sonames tried, in order: Debian and Ubuntu ship libsrt built with GnuTLS or
/// OpenSSL (the same API); other distributions name it `libsrt.so.1.5`.
const SONAMES: [&str; 4] = [
    "libsrt-gnutls.so.1.5",
    "libsrt-openssl.so.1.5",
    "libsrt.so.1.5",
    "libsrt.so.1",
];

/// Socket options used here (srt.h `SRT_SOCKOPT`).
pub const SRTO_LATENCY: c_int = 23;
pub const SRTO_PASSPHRASE: c_int = 26;
pub const SRTO_CONNTIMEO: c_int = 36;
pub const SRTO_RCVLATENCY: c_int = 43;
pub const SRTO_STREAMID: c_int = 46;
pub const SRTO_PEERIDLETIMEO: c_int = 55;

/// The reject reason a listener gives for a stream it does not have (access-control
/// `SRT_REJX_NOTFOUND`, HTTP's 404 plus 1000).
pub const REJECT_NOT_FOUND: c_int = 1404;
/// ...for a malformed stream id (`SRT_REJX_BAD_REQUEST`).
pub const REJECT_BAD_REQUEST: c_int = 1400;

/// What libsrt calls for each caller a listener hears, before it accepts it.
pub type ListenHook = unsafe extern "C" fn(
    opaque: *mut c_void,
    socket: RawSocket,
    handshake_version: c_int,
    peer: *const c_void,
    stream_id: *const c_char,
) -> c_int;

/// libsrt's log callback (logging_api.h `SRT_LOG_HANDLER_FN`).
type LogHandler = unsafe extern "C" fn(
    opaque: *mut c_void,
    level: c_int,
    file: *const c_char,
    line: c_int,
    area: *const c_char,
    message: *const c_char,
);

/// syslog's levels, as libsrt takes them.
const LOG_ERR: c_int = 3;
const LOG_WARNING: c_int = 4;
/// libsrt's `SRT_LOGF_DISABLE_TIME | SRT_LOGF_DISABLE_THREADNAME | SRT_LOGF_DISABLE_EOL`:
/// the message alone (tracing adds time and the line's end).
const LOG_FLAGS_MESSAGE_ONLY: c_int = 1 | 2 | 8;

/// libsrt's warnings and errors into the node's log (target `libsrt`): they name what
/// only libsrt sees, such as a caller's wrong passphrase.
///
/// # Safety
/// libsrt passes NUL-terminated strings (or null) valid during the call.
unsafe extern "C" fn forward_log(
    _opaque: *mut c_void,
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    _area: *const c_char,
    message: *const c_char,
) {
    if message.is_null() {
        return;
    }
    // SAFETY: libsrt's promise above.
    let message = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    let message = message.trim();
    if level <= LOG_ERR {
        tracing::warn!(target: "libsrt", "{message}");
    } else {
        tracing::info!(target: "libsrt", "{message}");
    }
}

/// Why an SRT call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtError {
    /// libsrt is not installed on this machine (the operator's to fix; not retried
    /// until it is).
    #[error("libsrt is not installed (Debian: apt-get install libsrt1.5-openssl): {0}")]
    Unavailable(String),
    /// libsrt refused or failed a call: its message, and the reject reason a peer gave.
    #[error("{0}")]
    Call(String),
}

/// The functions flotilla calls, resolved once.
struct Api {
    /// Keeps the library mapped for as long as the function pointers are used: the
    /// whole process (the `OnceLock` never drops it).
    _library: Library,
    create_socket: unsafe extern "C" fn() -> RawSocket,
    setsockflag: unsafe extern "C" fn(RawSocket, c_int, *const c_void, c_int) -> c_int,
    getsockflag: unsafe extern "C" fn(RawSocket, c_int, *mut c_void, *mut c_int) -> c_int,
    bind: unsafe extern "C" fn(RawSocket, *const c_void, c_int) -> c_int,
    listen: unsafe extern "C" fn(RawSocket, c_int) -> c_int,
    accept: unsafe extern "C" fn(RawSocket, *mut c_void, *mut c_int) -> RawSocket,
    connect: unsafe extern "C" fn(RawSocket, *const c_void, c_int) -> c_int,
    recvmsg: unsafe extern "C" fn(RawSocket, *mut c_char, c_int) -> c_int,
    sendmsg: unsafe extern "C" fn(RawSocket, *const c_char, c_int, c_int, c_int) -> c_int,
    close: unsafe extern "C" fn(RawSocket) -> c_int,
    getlasterror: unsafe extern "C" fn(*mut c_int) -> c_int,
    getlasterror_str: unsafe extern "C" fn() -> *const c_char,
    listen_callback: unsafe extern "C" fn(RawSocket, ListenHook, *mut c_void) -> c_int,
    getrejectreason: unsafe extern "C" fn(RawSocket) -> c_int,
    setrejectreason: unsafe extern "C" fn(RawSocket, c_int) -> c_int,
    rejectreason_str: unsafe extern "C" fn(c_int) -> *const c_char,
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

fn load() -> Result<Api, String> {
    let mut failures = Vec::new();
    for soname in SONAMES {
        // SAFETY: loading libsrt runs its initialisers, which only set up its own
        // state; it is a C library with no Rust-visible invariants.
        match unsafe { Library::new(soname) } {
            Ok(library) => return resolve(library),
            Err(error) => failures.push(format!("{soname}: {error}")),
        }
    }
    Err(failures.join("; "))
}

fn resolve(library: Library) -> Result<Api, String> {
    macro_rules! symbol {
        ($name:literal) => {
            // SAFETY: the types are srt.h's declarations of libsrt 1.4/1.5 (checked
            // against the 1.5.1 header): `SRTSOCKET` is int32, `SRT_SOCKOPT` an enum
            // passed as int, sockaddr pointers opaque here. The pointer stays valid while
            // `library` is loaded, which `Api` keeps for the process's life.
            unsafe {
                *library
                    .get(concat!($name, "\0").as_bytes())
                    .map_err(|e| format!("{}: {e}", $name))?
            }
        };
    }
    let startup: unsafe extern "C" fn() -> c_int = symbol!("srt_startup");
    let set_log_level: unsafe extern "C" fn(c_int) = symbol!("srt_setloglevel");
    let set_log_flags: unsafe extern "C" fn(c_int) = symbol!("srt_setlogflags");
    let set_log_handler: unsafe extern "C" fn(*mut c_void, LogHandler) =
        symbol!("srt_setloghandler");
    let api = Api {
        create_socket: symbol!("srt_create_socket"),
        setsockflag: symbol!("srt_setsockflag"),
        getsockflag: symbol!("srt_getsockflag"),
        bind: symbol!("srt_bind"),
        listen: symbol!("srt_listen"),
        accept: symbol!("srt_accept"),
        connect: symbol!("srt_connect"),
        recvmsg: symbol!("srt_recvmsg"),
        sendmsg: symbol!("srt_sendmsg"),
        close: symbol!("srt_close"),
        getlasterror: symbol!("srt_getlasterror"),
        getlasterror_str: symbol!("srt_getlasterror_str"),
        listen_callback: symbol!("srt_listen_callback"),
        getrejectreason: symbol!("srt_getrejectreason"),
        setrejectreason: symbol!("srt_setrejectreason"),
        rejectreason_str: symbol!("srt_rejectreason_str"),
        _library: library,
    };
    // SAFETY: plain calls configuring libsrt's logging before any socket exists;
    // `forward_log` is a C function that reads only its arguments.
    unsafe {
        set_log_handler(std::ptr::null_mut(), forward_log);
        set_log_flags(LOG_FLAGS_MESSAGE_ONLY);
        set_log_level(LOG_WARNING);
    }
    // SAFETY: srt_startup takes no arguments and may be called more than once.
    if unsafe { startup() } < 0 {
        return Err("srt_startup failed".into());
    }
    Ok(api)
}

fn api() -> Result<&'static Api, SrtError> {
    API.get_or_init(load)
        .as_ref()
        .map_err(|why| SrtError::Unavailable(why.clone()))
}

/// Whether libsrt can be loaded here (for check-config's warning and the node's start).
pub fn available() -> Result<(), SrtError> {
    api().map(|_| ())
}

/// The calling thread's last libsrt error (libsrt keeps it per thread).
fn last_error(api: &Api) -> (c_int, String) {
    // SAFETY: both read libsrt's thread-local error state; a null errno pointer is
    // allowed, and the returned string is owned by libsrt and valid until the next call
    // on this thread, which is after we copied it.
    unsafe {
        let code = (api.getlasterror)(std::ptr::null_mut());
        let text = (api.getlasterror_str)();
        let text = if text.is_null() {
            String::from("unknown libsrt error")
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        };
        (code, text)
    }
}

fn reject_reason(api: &Api, socket: RawSocket) -> Option<String> {
    // SAFETY: plain calls on a socket handle (libsrt checks the handle); the string is
    // static in libsrt.
    unsafe {
        let reason = (api.getrejectreason)(socket);
        if reason == 0 {
            return None;
        }
        if reason >= 1000 {
            return Some(format!("rejected by the peer (code {reason})"));
        }
        let text = (api.rejectreason_str)(reason);
        (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned())
    }
}

/// One libsrt socket, closed when dropped.
#[derive(Debug)]
pub struct Socket {
    raw: RawSocket,
    /// Closed already (`close_now`): a handle is closed once, never a reused number.
    closed: std::sync::atomic::AtomicBool,
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        if let Ok(api) = api() {
            // SAFETY: closing a handle this value owns; libsrt tolerates a handle that
            // its peer already broke.
            unsafe {
                (api.close)(self.raw);
            }
        }
    }
}

impl Socket {
    /// A new socket in live mode (libsrt's default transtype), blocking.
    pub fn new() -> Result<Socket, SrtError> {
        let api = api()?;
        // SAFETY: no arguments; a negative handle is an error.
        let raw = unsafe { (api.create_socket)() };
        if raw < 0 {
            return Err(SrtError::Call(last_error(api).1));
        }
        Ok(Socket::owning(raw))
    }

    /// Takes ownership of a handle libsrt gave (an accepted socket).
    fn owning(raw: RawSocket) -> Socket {
        Socket {
            raw,
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Closes the socket now, while another thread may be blocked on it (its call then
    /// returns an error).
    pub fn close_now(&self) {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        if let Ok(api) = api() {
            // SAFETY: libsrt's calls are thread-safe; closing wakes a blocked accept.
            unsafe {
                (api.close)(self.raw);
            }
        }
    }

    pub fn raw(&self) -> RawSocket {
        self.raw
    }

    fn check(&self, api: &Api, result: c_int) -> Result<c_int, SrtError> {
        if result < 0 {
            let (_, text) = last_error(api);
            return Err(SrtError::Call(match reject_reason(api, self.raw) {
                Some(reason) => format!("{text}: {reason}"),
                None => text,
            }));
        }
        Ok(result)
    }

    pub fn set_i32(&self, option: c_int, value: i32) -> Result<(), SrtError> {
        set_option_i32(self.raw, option, value)
    }

    pub fn set_bytes(&self, option: c_int, value: &[u8]) -> Result<(), SrtError> {
        set_option_bytes(self.raw, option, value)
    }

    /// The stream id the caller sent (an accepted socket), at most 512 bytes.
    pub fn stream_id(&self) -> Result<String, SrtError> {
        stream_id_of(self.raw)
    }

    pub fn bind(&self, address: SocketAddr) -> Result<(), SrtError> {
        let api = api()?;
        let address = socket2::SockAddr::from(address);
        // SAFETY: `address` is a valid sockaddr of `len` bytes for the call's duration.
        let result = unsafe {
            (api.bind)(
                self.raw,
                address.as_ptr().cast::<c_void>(),
                address.len() as c_int,
            )
        };
        self.check(api, result).map(|_| ())
    }

    pub fn listen(&self, backlog: i32) -> Result<(), SrtError> {
        let api = api()?;
        // SAFETY: a plain call on our handle.
        let result = unsafe { (api.listen)(self.raw, backlog) };
        self.check(api, result).map(|_| ())
    }

    /// Installs `hook` to vet each caller before it is accepted; `opaque` is handed to
    /// it and must stay valid while the listener lives.
    ///
    /// # Safety
    /// `opaque` must point to what `hook` expects, valid for the listener's whole life
    /// (libsrt calls the hook from its own threads until the listener is closed).
    pub unsafe fn on_caller(&self, hook: ListenHook, opaque: *mut c_void) -> Result<(), SrtError> {
        let api = api()?;
        // SAFETY: the caller promises `opaque`'s validity; `hook` is a plain C function.
        let result = unsafe { (api.listen_callback)(self.raw, hook, opaque) };
        self.check(api, result).map(|_| ())
    }

    /// Waits for the next caller (blocking); an error once the listener is closed.
    pub fn accept(&self) -> Result<(Socket, SocketAddr), SrtError> {
        let api = api()?;
        // sockaddr_storage is 128 bytes.
        let mut storage = [0u8; 128];
        let mut length = storage.len() as c_int;
        // SAFETY: `storage` has room for any socket address; libsrt writes at most
        // `length` bytes and updates it.
        let raw =
            unsafe { (api.accept)(self.raw, storage.as_mut_ptr().cast::<c_void>(), &mut length) };
        if raw < 0 {
            return Err(SrtError::Call(last_error(api).1));
        }
        let socket = Socket::owning(raw);
        let peer = peer_address(&storage, length).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok((socket, peer))
    }

    /// Connects to a listener (blocking, within `SRTO_CONNTIMEO`).
    pub fn connect(&self, address: SocketAddr) -> Result<(), SrtError> {
        let api = api()?;
        let address = socket2::SockAddr::from(address);
        // SAFETY: as in `bind`.
        let result = unsafe {
            (api.connect)(
                self.raw,
                address.as_ptr().cast::<c_void>(),
                address.len() as c_int,
            )
        };
        self.check(api, result).map(|_| ())
    }

    /// Receives one message (a live-mode packet's payload, ≤ 1456 bytes) into `buffer`,
    /// blocking until one arrives or the connection breaks or is closed.
    pub fn receive(&self, buffer: &mut [u8]) -> Result<usize, SrtError> {
        let api = api()?;
        let length = buffer.len().min(i32::MAX as usize) as c_int;
        // SAFETY: libsrt writes at most `length` bytes into `buffer`.
        let result =
            unsafe { (api.recvmsg)(self.raw, buffer.as_mut_ptr().cast::<c_char>(), length) };
        if result < 0 {
            return Err(SrtError::Call(last_error(api).1));
        }
        Ok(result as usize)
    }

    /// Sends one message (≤ 1316 bytes in live mode), blocking while libsrt's send buffer
    /// is full; for the SRT benchmark's encoder.
    pub fn send(&self, message: &[u8]) -> Result<(), SrtError> {
        let api = api()?;
        let length = message.len().min(i32::MAX as usize) as c_int;
        // SAFETY: libsrt reads `length` bytes from `message` during the call; ttl -1 (no
        // expiry), in order false (live mode ignores it).
        let result =
            unsafe { (api.sendmsg)(self.raw, message.as_ptr().cast::<c_char>(), length, -1, 0) };
        self.check(api, result).map(|_| ())
    }
}

/// Sets an int option on a handle (also one libsrt hands to a listen hook): libsrt reads
/// an int option as 4 bytes in the machine's order.
pub fn set_option_i32(raw: RawSocket, option: c_int, value: i32) -> Result<(), SrtError> {
    set_option_bytes(raw, option, &value.to_ne_bytes())
}

/// Sets an option given as bytes (a passphrase, a stream id, an int's bytes) on a handle.
pub fn set_option_bytes(raw: RawSocket, option: c_int, value: &[u8]) -> Result<(), SrtError> {
    let api = api()?;
    // SAFETY: libsrt copies `value.len()` bytes from the pointer during the call.
    let result = unsafe {
        (api.setsockflag)(
            raw,
            option,
            value.as_ptr().cast::<c_void>(),
            value.len() as c_int,
        )
    };
    if result < 0 {
        return Err(SrtError::Call(last_error(api).1));
    }
    Ok(())
}

/// The stream id set on a handle.
fn stream_id_of(raw: RawSocket) -> Result<String, SrtError> {
    let api = api()?;
    let mut buffer = [0u8; 513];
    let mut length = buffer.len() as c_int;
    // SAFETY: libsrt writes at most `length` bytes and updates it.
    let result = unsafe {
        (api.getsockflag)(
            raw,
            SRTO_STREAMID,
            buffer.as_mut_ptr().cast::<c_void>(),
            &mut length,
        )
    };
    if result < 0 {
        return Err(SrtError::Call(last_error(api).1));
    }
    let length = (length.max(0) as usize).min(buffer.len());
    Ok(String::from_utf8_lossy(&buffer[..length])
        .trim_end_matches('\0')
        .to_string())
}

/// Sets the reason a listen hook refuses a caller with (the caller sees it).
pub fn set_reject_reason(raw: RawSocket, reason: c_int) {
    if let Ok(api) = api() {
        // SAFETY: a plain call on a handle libsrt handed to the hook.
        unsafe {
            (api.setrejectreason)(raw, reason);
        }
    }
}

/// A stream id libsrt handed to a listen hook, as text (`None` for a null pointer).
///
/// # Safety
/// `stream_id` must be null or a NUL-terminated string valid for the call, which libsrt
/// guarantees for the hook's argument.
pub unsafe fn hook_stream_id(stream_id: *const c_char) -> Option<String> {
    if stream_id.is_null() {
        return None;
    }
    // SAFETY: the caller's promise.
    Some(
        unsafe { CStr::from_ptr(stream_id) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The address in a sockaddr_storage libsrt filled.
fn peer_address(storage: &[u8; 128], length: c_int) -> Option<SocketAddr> {
    // sa_family is the first u16 (native endian) on Linux.
    let family = u16::from_ne_bytes([storage[0], storage[1]]);
    match (family, length) {
        (2, 16..) => {
            let port = u16::from_be_bytes([storage[2], storage[3]]);
            let ip = std::net::Ipv4Addr::new(storage[4], storage[5], storage[6], storage[7]);
            Some(SocketAddr::from((ip, port)))
        }
        (10, 28..) => {
            let port = u16::from_be_bytes([storage[2], storage[3]]);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&storage[8..24]);
            Some(SocketAddr::from((std::net::Ipv6Addr::from(octets), port)))
        }
        _ => None,
    }
}

/// A duration as libsrt's millisecond options take it.
pub fn millis(duration: Duration) -> i32 {
    duration.as_millis().min(i32::MAX as u128) as i32
}
