//! iaxmodem (libiax2 + spandsp) as a test peer.
//!
//! Debian's `iaxmodem` is a software fax modem: spandsp's ITU-T T.31
//! ("service class 1") modem behind a pseudo-terminal, whose telephone
//! line is an IAX2 call made with its own copy of libiax2. [`Modem::start`]
//! runs one in the foreground with its configuration in a scratch
//! directory and opens its pty; the test is then the DTE: it writes AT
//! commands and reads result codes ([`ResultCode`]), and in the data
//! phases writes and reads class 1 data, which is DLE-stuffed and ends
//! with DLE ETX ([`dle_stuff`], [`dle_unstuff`]). Received HDLC frames
//! end with their two FCS octets ([`hdlc_fcs`]).
//!
//! Two iaxmodems connected by a call exchange real modem signals (V.21
//! HDLC, V.29, V.17) as G.711 audio, so data that arrives intact proves
//! the audio path between them intact.
//!
//! iaxmodem refuses to run unless started as root, reads its
//! configuration from `/etc/iaxmodem/<name>` (a name with `../..` in
//! front of an absolute path reaches any file) and, in the foreground,
//! logs to stdout and stderr: here a log file next to its configuration
//! ([`Modem::log`]). With `IAX2_INTEROP_IAX2DEBUG` set in the environment
//! libiax2 logs every full frame too. The process is killed when the
//! [`Modem`] is dropped.

use std::ffi::CStr;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// DLE: in class 1 data, DLE ETX ends a block and DLE DLE is one DLE
/// octet.
pub const DLE: u8 = 0x10;
/// ETX, after DLE: the end of a block of class 1 data.
pub const ETX: u8 = 0x03;
/// SUB, after DLE: two DLE octets (a shorthand some modems use).
pub const SUB: u8 = 0x1a;
/// DC1 (XON): iaxmodem's in-band "send more" while it transmits.
pub const XON: u8 = 0x11;
/// DC3 (XOFF): iaxmodem's in-band "stop sending" while it transmits.
pub const XOFF: u8 = 0x13;

/// How long iaxmodem gets to create its pty.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// iaxmodem copies the device path and the server into 64-byte buffers.
const MAX_CONFIG_VALUE: usize = 63;

/// The V.250 result codes (verbose form) the tests meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    /// `OK`: a command (or a transmission) completed.
    Ok,
    /// `CONNECT`: a connection, or a class 1 carrier, is up.
    Connect,
    /// `RING`: an incoming call (unsolicited).
    Ring,
    /// `NO CARRIER`: the carrier (or the call) is gone.
    NoCarrier,
    /// `ERROR`: a command failed (in class 1 also a frame with a bad FCS).
    Error,
    /// `NO DIALTONE`: iaxmodem's report of a rejected call.
    NoDialtone,
    /// `BUSY`.
    Busy,
    /// `NO ANSWER`.
    NoAnswer,
}

impl ResultCode {
    /// Every code.
    pub const ALL: [Self; 8] = [
        Self::Ok,
        Self::Connect,
        Self::Ring,
        Self::NoCarrier,
        Self::Error,
        Self::NoDialtone,
        Self::Busy,
        Self::NoAnswer,
    ];

    /// The verbose text.
    pub fn text(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Connect => "CONNECT",
            Self::Ring => "RING",
            Self::NoCarrier => "NO CARRIER",
            Self::Error => "ERROR",
            Self::NoDialtone => "NO DIALTONE",
            Self::Busy => "BUSY",
            Self::NoAnswer => "NO ANSWER",
        }
    }
}

/// Where iaxmodem is installed, if it is: `$PATH`, then the usual
/// directories (`/usr/sbin` is not on every user's path).
pub fn iaxmodem_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("iaxmodem"))
        .find(|p| p.is_file())
}

/// One running iaxmodem and its pty, opened raw.
pub struct Modem {
    name: String,
    child: Child,
    tty: File,
    device: PathBuf,
    log: PathBuf,
    /// Read from the pty and not consumed yet.
    pending: Vec<u8>,
}

impl Modem {
    /// Starts iaxmodem `name` with its files in `dir` (configuration
    /// `name`, pty link `tty<name>`, log `<name>.log`): it listens on UDP
    /// `port` (on every address), registers at once with `server` (its
    /// gateway) as `peername` with `secret` (MD5 when challenged, REFRESH
    /// 60), and places its calls there too, as `peername:secret@server/
    /// number`, calling number `cidnumber`, G.711 µ-law. Returns once its
    /// pty is open.
    pub fn start(
        dir: &Path,
        name: &str,
        port: u16,
        server: SocketAddr,
        peername: &str,
        secret: &str,
        cidnumber: &str,
    ) -> io::Result<Self> {
        let Some(program) = iaxmodem_path() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "iaxmodem is not installed: run scripts/install-test-deps \
                 (Debian package iaxmodem)",
            ));
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "iaxmodem refuses to run unless started as root (it creates \
                 its pty as root, then drops to uucp): run these tests as root",
            ));
        }
        let dir = fs::canonicalize(dir)?;
        let device = dir.join(format!("tty{name}"));
        let config = dir.join(name);
        let log = dir.join(format!("{name}.log"));
        let server = server.to_string();
        for (what, value) in [
            ("device path", device.to_string_lossy().as_ref()),
            ("server", server.as_str()),
            ("peername", peername),
            ("secret", secret),
            ("cidnumber", cidnumber),
            ("name", name),
        ] {
            check_config_value(what, value)?;
        }

        let mut text = String::new();
        let _ = writeln!(text, "device {}", device.display());
        if let Some(owner) = owner() {
            let _ = writeln!(text, "owner {owner}");
        }
        let _ = writeln!(text, "mode 660");
        let _ = writeln!(text, "port {port}");
        let _ = writeln!(text, "refresh 60");
        let _ = writeln!(text, "server {server}");
        let _ = writeln!(text, "peername {peername}");
        let _ = writeln!(text, "secret {secret}");
        let _ = writeln!(text, "cidname {name}");
        let _ = writeln!(text, "cidnumber {cidnumber}");
        let _ = writeln!(text, "codec ulaw");
        if std::env::var_os("IAX2_INTEROP_IAX2DEBUG").is_some() {
            // libiax2 prints every full frame it sends and receives.
            let _ = writeln!(text, "iax2debug");
        }
        fs::write(&config, text)?;

        // The name is always read below /etc/iaxmodem/.
        let config_name = format!("../..{}", config.display());
        let log_file = File::create(&log)?;
        // iaxmodem's progress messages go to stdout, which is fully buffered
        // when it is a file: stdbuf (coreutils) makes it line-buffered so
        // that the log can be read while the modem runs.
        let mut command = match find_program("stdbuf") {
            Some(stdbuf) => {
                let mut c = Command::new(stdbuf);
                c.arg("-oL").arg(&program);
                c
            }
            None => Command::new(&program),
        };
        // One argument: that modem alone, in the foreground.
        command
            .arg(&config_name)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let mut child = command.spawn()?;
        let tty = match wait_for_pty(&mut child, &device) {
            Ok(tty) => tty,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    e.kind(),
                    format!("iaxmodem {name}: {e}{}", log_tail(&log)),
                ));
            }
        };
        Ok(Self {
            name: name.to_owned(),
            child,
            tty,
            device,
            log,
            pending: Vec::new(),
        })
    }

    /// The name it was started with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pty symlink.
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops iaxmodem as its init script would, with SIGTERM: it then
    /// unregisters (REGREL) and waits for the answer before exiting.
    /// Killed if it has not exited within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        if self.child.try_wait()?.is_none() {
            // SAFETY: `pid` is our child and not reaped yet (try_wait said
            // so), so it names no other process.
            if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{}: still running {timeout:?} after SIGTERM (killed){}",
                        self.name,
                        log_tail(&self.log)
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything iaxmodem logged so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Whether the log has a line containing `text` (iaxmodem's stdout is
    /// line-buffered when coreutils' stdbuf is there, as on Debian).
    pub fn logged(&self, text: &str) -> bool {
        self.log().lines().any(|l| l.contains(text))
    }

    /// Writes `bytes` to the pty, all of them within `timeout` (the modem
    /// takes data only as fast as it transmits it).
    pub fn write(&mut self, bytes: &[u8], timeout: Duration) -> io::Result<()> {
        let end = Instant::now() + timeout;
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.tty.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.poll(libc::POLLOUT, end)? {
                        return Err(self.timeout_error(&format!("{} bytes not taken", rest.len())));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes the command line `cmd` (`AT...`, without the CR) and
    /// returns once the modem has echoed it (echo is on by default), i.e.
    /// its AT interpreter has taken it: for commands whose result comes
    /// later (`AT+FRM`, `AT+FRH` wait for the far modem's carrier), so
    /// that the far modem is told to transmit only after this one listens.
    /// Returns what came before the echo.
    pub fn start_command(&mut self, cmd: &str, timeout: Duration) -> io::Result<Vec<u8>> {
        self.write(format!("{cmd}\r").as_bytes(), timeout)?;
        self.read_until(format!("{cmd}\r").as_bytes(), timeout)
    }

    /// Writes the command line `cmd` and waits for its final result code,
    /// which must be `expect`; returns the text before it (the echo, and
    /// any information text). Unsolicited `RING`s are skipped unless
    /// `RING` is what is expected.
    pub fn command(
        &mut self,
        cmd: &str,
        expect: ResultCode,
        timeout: Duration,
    ) -> io::Result<String> {
        self.write(format!("{cmd}\r").as_bytes(), timeout)?;
        self.expect_result(expect, timeout)
            .map_err(|e| io::Error::new(e.kind(), format!("after {cmd}: {e}")))
    }

    /// Waits for the next result code, which must be `expect`; returns the
    /// text before it. `RING`s are skipped unless expected.
    pub fn expect_result(&mut self, expect: ResultCode, timeout: Duration) -> io::Result<String> {
        let end = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let (code, text) = self.read_result(left).map_err(|e| {
                io::Error::new(e.kind(), format!("waiting for {}: {e}", expect.text()))
            })?;
            before.extend_from_slice(&text);
            if code == expect {
                return Ok(String::from_utf8_lossy(&before).into_owned());
            }
            if code != ResultCode::Ring {
                return Err(io::Error::other(format!(
                    "{}: {} instead of {} (after \"{}\"){}",
                    self.name,
                    code.text(),
                    expect.text(),
                    before.escape_ascii(),
                    log_tail(&self.log)
                )));
            }
        }
    }

    /// The next result code within `timeout`, and the bytes before it
    /// (consumed with it).
    pub fn read_result(&mut self, timeout: Duration) -> io::Result<(ResultCode, Vec<u8>)> {
        let end = Instant::now() + timeout;
        loop {
            if let Some((at, len, code)) = find_result(&self.pending) {
                let before = self.pending[..at].to_vec();
                self.pending.drain(..at + len);
                return Ok((code, before));
            }
            if !self.fill(end)? {
                return Err(self.timeout_error("no result code"));
            }
        }
    }

    /// Reads until `pattern` has arrived; returns what came before it
    /// (both consumed).
    pub fn read_until(&mut self, pattern: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(at) = find(&self.pending, pattern) {
                let before = self.pending[..at].to_vec();
                self.pending.drain(..at + pattern.len());
                return Ok(before);
            }
            if !self.fill(end)? {
                let what = format!("no \"{}\"", pattern.escape_ascii());
                return Err(self.timeout_error(&what));
            }
        }
    }

    /// Reads whatever arrives during `period`, without consuming it.
    pub fn peek_for(&mut self, period: Duration) -> io::Result<&[u8]> {
        let end = Instant::now() + period;
        while self.fill(end)? {}
        Ok(&self.pending)
    }

    /// Reads class 1 data (after a `CONNECT` in receive mode) up to its
    /// DLE ETX; returns it unstuffed. The result code that follows stays
    /// unread.
    pub fn read_data(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        let end = Instant::now() + timeout;
        loop {
            if let Some((data, used)) = dle_unstuff(&self.pending) {
                self.pending.drain(..used);
                return Ok(data);
            }
            if !self.fill(end)? {
                return Err(self.timeout_error("no DLE ETX"));
            }
        }
    }

    /// Writes class 1 data (after a `CONNECT` in transmit mode):
    /// `data`, DLE-stuffed, then DLE ETX.
    pub fn write_data(&mut self, data: &[u8], timeout: Duration) -> io::Result<()> {
        let mut stuffed = dle_stuff(data);
        stuffed.extend_from_slice(&[DLE, ETX]);
        self.write(&stuffed, timeout)
    }

    /// Waits until the pty is readable (or, with `POLLOUT`, writable), or
    /// `end`; false on timeout.
    fn poll(&self, events: libc::c_short, end: Instant) -> io::Result<bool> {
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
            let mut fds = libc::pollfd {
                fd: self.tty.as_raw_fd(),
                events,
                revents: 0,
            };
            // SAFETY: one valid pollfd, and nfds says one.
            let n = unsafe { libc::poll(&mut fds, 1, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Ok(false);
            }
            if fds.revents & (libc::POLLHUP | libc::POLLERR) != 0 && fds.revents & events == 0 {
                // The master side is closed: iaxmodem is gone.
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    format!("{}: the pty hung up{}", self.name, log_tail(&self.log)),
                ));
            }
            return Ok(true);
        }
    }

    /// Reads what the pty has into `pending`, waiting until `end` for the
    /// first bytes; false if none came.
    fn fill(&mut self, end: Instant) -> io::Result<bool> {
        if !self.poll(libc::POLLIN, end)? {
            return Ok(false);
        }
        let mut buf = [0u8; 4096];
        match self.tty.read(&mut buf) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: the pty closed{}", self.name, log_tail(&self.log)),
            )),
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Ok(true)
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    fn timeout_error(&self, what: &str) -> io::Error {
        let tail = &self.pending[self.pending.len().saturating_sub(300)..];
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{}: {what}; unread from the pty: \"{}\"{}",
                self.name,
                tail.escape_ascii(),
                log_tail(&self.log)
            ),
        )
    }
}

impl Drop for Modem {
    fn drop(&mut self) {
        // SIGKILL: SIGTERM would make iaxmodem unregister and wait for
        // the answer without a limit.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for iaxmodem to link `device` to its pty, and opens it.
fn wait_for_pty(child: &mut Child, device: &Path) -> io::Result<File> {
    let end = Instant::now() + START_TIMEOUT;
    loop {
        if fs::symlink_metadata(device).is_ok() {
            match open_raw(device) {
                Ok(tty) => return Ok(tty),
                // The link comes before the pty's owner and mode are set.
                Err(_) if Instant::now() < end => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "exited ({status}) before opening its pty"
            )));
        }
        if Instant::now() >= end {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no pty at {} within {START_TIMEOUT:?}", device.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `data` with every DLE doubled (class 1 data towards the modem; the
/// DLE ETX that ends it is the caller's).
pub fn dle_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 2);
    for &b in data {
        out.push(b);
        if b == DLE {
            out.push(DLE);
        }
    }
    out
}

/// The class 1 data at the start of `stream` up to DLE ETX, unstuffed,
/// and how many bytes of `stream` it used (DLE ETX included); `None`
/// while DLE ETX has not arrived. DLE DLE is one DLE, DLE SUB two; other
/// DLE pairs (T.31 has none towards the DTE) are dropped.
pub fn dle_unstuff(stream: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::with_capacity(stream.len());
    let mut i = 0;
    while i < stream.len() {
        let b = stream[i];
        if b != DLE {
            out.push(b);
            i += 1;
            continue;
        }
        match *stream.get(i + 1)? {
            ETX => return Some((out, i + 2)),
            DLE => out.push(DLE),
            SUB => out.extend_from_slice(&[DLE, DLE]),
            _ => {}
        }
        i += 2;
    }
    None
}

/// The HDLC frame check sequence of `frame` (ITU-T V.42 FCS-16, as V.21
/// fax frames carry it), in transmission order: the two octets a class 1
/// modem passes on after a received frame.
pub fn hdlc_fcs(frame: &[u8]) -> [u8; 2] {
    let mut crc: u16 = 0xffff;
    for &b in frame {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x8408
            } else {
                crc >> 1
            };
        }
    }
    (!crc).to_le_bytes()
}

/// The first result code in `bytes` (as `CR LF text CR LF`): its offset,
/// length and code.
fn find_result(bytes: &[u8]) -> Option<(usize, usize, ResultCode)> {
    ResultCode::ALL
        .iter()
        .filter_map(|&code| {
            let pattern = format!("\r\n{}\r\n", code.text());
            find(bytes, pattern.as_bytes()).map(|at| (at, pattern.len(), code))
        })
        .min_by_key(|&(at, _, _)| at)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Opens a pty raw and non-blocking: no echo, no CR/NL mapping, no
/// XON/XOFF of the line discipline's own (DC1 and DC3 are data here).
fn open_raw(path: &Path) -> io::Result<File> {
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data, filled by tcgetattr before use; the
    // fd is open for the whole block.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(tty)
}

/// `user:group` of this process, for the pty (iaxmodem takes names).
fn owner() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: the passwd and group records and their strings live in
    // `pw`/`gr` and `buf`, which outlive the reads; the result pointers
    // are only read when the calls succeed.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if rc != 0 || found.is_null() {
            return None;
        }
        let user = CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned();
        let mut gr: libc::group = std::mem::zeroed();
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrgid_r(
            libc::getegid(),
            &mut gr,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if rc != 0 || found.is_null() {
            return None;
        }
        let group = CStr::from_ptr(gr.gr_name).to_string_lossy().into_owned();
        Some(format!("{user}:{group}"))
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// iaxmodem's configuration lines are `key value`, cut at `;`, and
/// refused whole when they hold `%`; its buffers take 63 characters.
fn check_config_value(what: &str, value: &str) -> io::Result<()> {
    let bad = value.is_empty()
        || value.len() > MAX_CONFIG_VALUE
        || value.contains(['%', ';', '\n', '\r']);
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "iaxmodem {what} {value:?}: 1 to {MAX_CONFIG_VALUE} characters, \
                 none of % ; or a line break"
            ),
        ));
    }
    Ok(())
}

/// The last lines of a log, for error messages.
fn log_tail(log: &Path) -> String {
    let text = fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(25)..].join("\n");
    format!("\n--- {} (last lines) ---\n{tail}", log.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing_round_trips_and_stops_at_dle_etx() {
        let data = [0x00, DLE, ETX, DLE, DLE, 0xff, SUB];
        let mut stream = dle_stuff(&data);
        assert_eq!(stream.len(), data.len() + 3);
        stream.extend_from_slice(&[DLE, ETX, b'\r', b'\n']);
        let (back, used) = dle_unstuff(&stream).expect("complete");
        assert_eq!(back, data);
        assert_eq!(used, stream.len() - 2);
        assert_eq!(dle_unstuff(&stream[..used - 1]), None);
        assert_eq!(
            dle_unstuff(&[1, DLE, SUB, DLE, ETX]),
            Some((vec![1, DLE, DLE], 5))
        );
    }

    #[test]
    fn fcs_of_the_v42_check_string() {
        // FCS-16 of "123456789" is 0x906e (transmitted low octet first).
        assert_eq!(hdlc_fcs(b"123456789"), [0x6e, 0x90]);
    }

    #[test]
    fn result_codes_are_whole_lines() {
        let (at, len, code) = find_result(b"ATD1\r\r\nNO CARRIER\r\n\r\nOK\r\n").expect("one");
        assert_eq!((at, len, code), (5, 14, ResultCode::NoCarrier));
        assert_eq!(find_result(b"\r\nOKAY\r\n"), None);
    }
}
