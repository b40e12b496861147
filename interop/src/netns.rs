//! A NAT lab in network namespaces: site A behind a masquerading router,
//! site B on the router's public side.
//!
//! ```text
//! nsA 10.10.0.2 (eth0) -- (lan) 10.10.0.1  nsNAT  100.64.0.1 (wan) -- (eth0) 100.64.0.2 nsB
//!     default via 10.10.0.1           masquerade out wan            no route to 10.10.0.0/24
//! ```
//!
//! A network namespace is a property of a thread on Linux, inherited by
//! the threads it spawns, and a socket stays in the namespace it was
//! created in. [`in_netns`] runs a closure on a thread moved into a
//! namespace, so gateways and emulated PBXs started there bind, send and
//! spawn their workers inside it while the test drives them from outside.
//! The router's connection tracking (`conntrack`) and its NAT rule
//! (`nft`) are what the tests age, inspect and replace.
//!
//! Every namespace name is unique to the process and the lab ([`NatLab::new`]),
//! so labs of tests running in parallel never meet, and each namespace is
//! deleted when its [`Netns`] guard drops, on a panic too.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Site A's address (nsA's `eth0`).
pub const A_ADDR: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
/// The router's inner address, site A's default gateway.
pub const NAT_INNER: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
/// The router's public address: what site B sees of site A.
pub const NAT_PUBLIC: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
/// Site B's address (nsB's `eth0`), on the router's public side.
pub const B_ADDR: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
/// Site A's network, which only the router and site A see.
pub const SITE_A_NET: &str = "10.10.0.0/24";

/// The router's interface toward site A.
const NAT_LAN: &str = "lan";
/// The router's interface toward site B (the WAN).
const NAT_WAN: &str = "wan";
/// The nftables table holding the NAT rule.
const NFT_TABLE: &str = "iax2lab";

/// Why the lab cannot run on this machine (`None`: it can): it needs
/// root and the `ip`, `nft` and `conntrack` tools.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root".to_owned());
    }
    let missing: Vec<&str> = ["ip", "nft", "conntrack"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect();
    (!missing.is_empty()).then(|| format!("missing tools: {}", missing.join(", ")))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Where `ip netns` keeps the namespace named `ns`.
fn netns_path(ns: &str) -> PathBuf {
    Path::new("/var/run/netns").join(ns)
}

/// Runs `f` on a new thread inside network namespace `ns` (one made by
/// `ip netns add`, e.g. a [`Netns`]) and returns its result; a panic in
/// `f` is resumed here. Sockets `f` creates and threads it spawns stay in
/// `ns` after it returns. Panics if `ns` cannot be entered.
pub fn in_netns<R: Send>(ns: &str, f: impl FnOnce() -> R + Send) -> R {
    let file = File::open(netns_path(ns))
        .unwrap_or_else(|e| panic!("network namespace {ns}: cannot open it: {e}"));
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("netns".to_owned())
            .spawn_scoped(scope, move || {
                // SAFETY: `file` is an open namespace file for the whole
                // call; setns changes only this thread's namespace.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    panic!(
                        "network namespace {ns}: cannot enter it: {}",
                        io::Error::last_os_error()
                    );
                }
                drop(file);
                f()
            })
            .unwrap_or_else(|e| panic!("network namespace {ns}: cannot spawn a thread: {e}"));
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `program args` to completion; its stdout, or an error naming the
/// command with its stderr when it fails.
fn run<I, S>(program: &str, args: I, stdin: Option<&str>) -> io::Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = command_output(program, args, stdin)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(failed(program, &output))
    }
}

fn command_output<I, S>(program: &str, args: I, stdin: Option<&str>) -> io::Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    let described = format!("{cmd:?}");
    let annotate = |e: io::Error| io::Error::new(e.kind(), format!("{described}: {e}"));
    let Some(input) = stdin else {
        return cmd.stdin(Stdio::null()).output().map_err(annotate);
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(annotate)?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(input.as_bytes()).map_err(annotate)?;
    }
    child.wait_with_output().map_err(annotate)
}

fn failed(program: &str, output: &Output) -> io::Error {
    io::Error::other(format!(
        "{program} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// A network namespace made by `ip netns add`, deleted when dropped.
///
/// Threads and sockets still in it keep the namespace alive (without its
/// name) until they end, so drop the gateways and PBXs started in it first.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` with its loopback interface up.
    pub fn create(name: &str) -> io::Result<Self> {
        run("ip", ["netns", "add", name], None)?;
        let ns = Self {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name, for `ip netns` and [`in_netns`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` inside it (see [`in_netns`]).
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        in_netns(&self.name, f)
    }

    /// `ip -n <ns> args`: its stdout.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        run(
            "ip",
            ["-n", self.name.as_str()].iter().chain(args.iter()),
            None,
        )
    }

    /// `program args` run inside it (`ip netns exec`): its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<String> {
        self.exec_with_input(program, args, None)
    }

    fn exec_with_input(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> io::Result<String> {
        run("ip", self.exec_args(program, args), stdin)
    }

    fn exec_args<'a>(&'a self, program: &'a str, args: &'a [&'a str]) -> Vec<&'a str> {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        all
    }

    /// Sets sysctl `key` (dotted, e.g. `net.ipv4.ip_forward`) in this
    /// namespace: written to `/proc/sys` from a thread inside it, so no
    /// `sysctl` tool is needed.
    pub fn set_sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let path = sysctl_path(key);
        self.enter(|| std::fs::write(&path, value))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {key}: {e}", self.name)))
    }

    /// Reads sysctl `key` in this namespace.
    pub fn sysctl(&self, key: &str) -> io::Result<String> {
        let path = sysctl_path(key);
        self.enter(|| std::fs::read_to_string(&path))
            .map(|v| v.trim().to_owned())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {key}: {e}", self.name)))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run("ip", ["netns", "delete", self.name.as_str()], None) {
            eprintln!("cannot delete network namespace {}: {e}", self.name);
        }
    }
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

/// How the router rewrites site A's traffic out of its WAN interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Masquerade {
    /// `masquerade`: the WAN address, keeping the source port when free.
    Default,
    /// `masquerade to :first-last` for UDP: the WAN address, a port in
    /// this range (other protocols as [`Default`](Self::Default)).
    Ports(u16, u16),
    /// `snat to addr`: another public address, one of the WAN network
    /// 100.64.0.0/24 (added to the WAN interface so that the router
    /// answers for it), keeping the port when free.
    Address(Ipv4Addr),
}

impl Masquerade {
    /// The NAT rules, after the match on site A's traffic out of the WAN;
    /// the first that matches applies (a port range needs a protocol).
    fn rules(&self) -> Vec<String> {
        match self {
            Self::Default => vec!["masquerade".to_owned()],
            Self::Ports(first, last) => vec![
                format!("meta l4proto udp masquerade to :{first}-{last}"),
                "masquerade".to_owned(),
            ],
            Self::Address(addr) => vec![format!("snat to {addr}")],
        }
    }
}

/// One direction of a tracked connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    /// Source address and port.
    pub src: SocketAddrV4,
    /// Destination address and port.
    pub dst: SocketAddrV4,
}

/// A UDP entry of the router's connection tracking table (`conntrack -L`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conntrack {
    /// Seconds left before it expires.
    pub timeout_secs: u64,
    /// As the first datagram went (for site A's flows: A's private
    /// address to the far end).
    pub orig: Tuple,
    /// As the answers come (to the public address and port the router
    /// gave the flow).
    pub reply: Tuple,
    /// Answers seen (no `[UNREPLIED]` flag).
    pub replied: bool,
    /// `[ASSURED]`: traffic seen both ways, on the stream timeout.
    pub assured: bool,
}

impl Conntrack {
    /// The public address and port the router maps the flow to: where the
    /// far end sends its answers.
    pub fn public(&self) -> SocketAddrV4 {
        self.reply.dst
    }

    /// Parses one line of `conntrack -L -p udp`, e.g.
    /// `udp 17 3 src=10.10.0.2 dst=100.64.0.2 sport=4569 dport=4569
    /// src=100.64.0.2 dst=100.64.0.1 sport=4569 dport=4569 [ASSURED] mark=0 use=1`.
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        if words.next()? != "udp" {
            return None;
        }
        let _protonum = words.next()?;
        let timeout_secs = words.next()?.parse().ok()?;
        let (mut src, mut dst, mut sport, mut dport) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut replied, mut assured) = (true, false);
        for word in words {
            match word.split_once('=') {
                Some(("src", v)) => src.push(v.parse::<Ipv4Addr>().ok()?),
                Some(("dst", v)) => dst.push(v.parse::<Ipv4Addr>().ok()?),
                Some(("sport", v)) => sport.push(v.parse::<u16>().ok()?),
                Some(("dport", v)) => dport.push(v.parse::<u16>().ok()?),
                Some(_) => {}
                None if word == "[UNREPLIED]" => replied = false,
                None if word == "[ASSURED]" => assured = true,
                None => {}
            }
        }
        let tuple = |i: usize| -> Option<Tuple> {
            Some(Tuple {
                src: SocketAddrV4::new(*src.get(i)?, *sport.get(i)?),
                dst: SocketAddrV4::new(*dst.get(i)?, *dport.get(i)?),
            })
        };
        Some(Self {
            timeout_secs,
            orig: tuple(0)?,
            reply: tuple(1)?,
            replied,
            assured,
        })
    }
}

/// Hands out lab names unique within this process.
static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// The three namespaces of the NAT lab (see the module documentation),
/// wired and running; all three are deleted when it drops.
#[derive(Debug)]
pub struct NatLab {
    /// Site A, behind the NAT: 10.10.0.2, default route via the router.
    pub a: Netns,
    /// The router: 10.10.0.1 inside, 100.64.0.1 outside, masquerading
    /// site A's traffic out of its WAN interface.
    pub nat: Netns,
    /// Site B, on the public side: 100.64.0.2, no route to site A's
    /// network.
    pub b: Netns,
}

impl NatLab {
    /// Creates and wires the namespaces, named
    /// `iax2nat-<pid>-<n>-{a,nat,b}` (unique to this process and lab),
    /// with forwarding and [`Masquerade::Default`] on the router. On an
    /// error the namespaces made so far are deleted.
    pub fn new() -> io::Result<Self> {
        let prefix = format!(
            "iax2nat-{}-{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::Relaxed)
        );
        let a = Netns::create(&format!("{prefix}-a"))?;
        let nat = Netns::create(&format!("{prefix}-nat"))?;
        let b = Netns::create(&format!("{prefix}-b"))?;
        // Each veth pair is made inside its namespaces, never in the
        // caller's, so fixed interface names cannot collide.
        a.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            NAT_LAN,
            "netns",
            nat.name(),
        ])?;
        b.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            NAT_WAN,
            "netns",
            nat.name(),
        ])?;
        let a_cidr = format!("{A_ADDR}/24");
        let inner = format!("{NAT_INNER}/24");
        let public = format!("{NAT_PUBLIC}/24");
        let b_cidr = format!("{B_ADDR}/24");
        let nat_inner = NAT_INNER.to_string();
        for (ns, dev, cidr) in [
            (&a, "eth0", &a_cidr),
            (&nat, NAT_LAN, &inner),
            (&nat, NAT_WAN, &public),
            (&b, "eth0", &b_cidr),
        ] {
            ns.ip(&["addr", "add", cidr, "dev", dev])?;
            ns.ip(&["link", "set", dev, "up"])?;
        }
        a.ip(&["route", "add", "default", "via", &nat_inner])?;
        nat.set_sysctl("net.ipv4.ip_forward", "1")?;
        let lab = Self { a, nat, b };
        lab.set_masquerade(&Masquerade::Default)?;
        Ok(lab)
    }

    /// Replaces the router's NAT rule for site A's traffic out of the
    /// WAN interface (atomically: one `nft -f` transaction). Existing
    /// connection tracking entries keep their mapping; new flows get the
    /// new one.
    pub fn set_masquerade(&self, how: &Masquerade) -> io::Result<()> {
        if let Masquerade::Address(addr) = how {
            let cidr = format!("{addr}/24");
            self.nat.ip(&["addr", "replace", &cidr, "dev", NAT_WAN])?;
        }
        let mut rules = format!(
            "table ip {NFT_TABLE}\n\
             delete table ip {NFT_TABLE}\n\
             table ip {NFT_TABLE} {{\n\
             \x20 chain postrouting {{\n\
             \x20   type nat hook postrouting priority srcnat; policy accept;\n"
        );
        for rule in how.rules() {
            let _ = writeln!(
                rules,
                "    oifname \"{NAT_WAN}\" ip saddr {SITE_A_NET} {rule}"
            );
        }
        rules.push_str("  }\n}\n");
        self.nat
            .exec_with_input("nft", &["-f", "-"], Some(&rules))
            .map(drop)
    }

    /// A NAT reboot: the router forgets every mapping and gives new flows
    /// the mapping `how` (e.g. [`Masquerade::Ports`], so site A's next
    /// datagram leaves from another public port).
    pub fn reboot_nat(&self, how: &Masquerade) -> io::Result<()> {
        self.set_masquerade(how)?;
        self.conntrack_flush()
    }

    /// Sets the router's UDP connection tracking timeouts, both the one
    /// for a flow seen one way or briefly (`nf_conntrack_udp_timeout`)
    /// and the one for an established stream
    /// (`nf_conntrack_udp_timeout_stream`), to `secs`. They are the
    /// router's own: the sysctls are per network namespace.
    pub fn set_udp_timeouts(&self, secs: u32) -> io::Result<()> {
        let value = secs.to_string();
        for key in UDP_TIMEOUTS {
            self.nat.set_sysctl(key, &value)?;
        }
        Ok(())
    }

    /// The router's UDP timeouts, unreplied then stream, in seconds.
    pub fn udp_timeouts(&self) -> io::Result<(u32, u32)> {
        let read = |key: &str| -> io::Result<u32> {
            self.nat
                .sysctl(key)?
                .parse()
                .map_err(|e| io::Error::other(format!("{key}: {e}")))
        };
        Ok((read(UDP_TIMEOUTS[0])?, read(UDP_TIMEOUTS[1])?))
    }

    /// The router's UDP connection tracking entries (`conntrack -L -p udp`).
    pub fn conntrack_udp(&self) -> io::Result<Vec<Conntrack>> {
        let text = self.nat.exec("conntrack", &["-L", "-p", "udp"])?;
        Ok(text.lines().filter_map(Conntrack::parse).collect())
    }

    /// The router's UDP entry whose original direction is `orig` (for
    /// site A's flows: its private address and port to the far end).
    pub fn conntrack_flow(&self, orig: Tuple) -> io::Result<Option<Conntrack>> {
        Ok(self.conntrack_udp()?.into_iter().find(|c| c.orig == orig))
    }

    /// Deletes the router's UDP entries whose original source is `src`
    /// (`conntrack -D`), as if they had expired; how many there were.
    pub fn conntrack_delete(&self, src: SocketAddrV4) -> io::Result<usize> {
        let (ip, port) = (src.ip().to_string(), src.port().to_string());
        let output = command_output(
            "ip",
            self.nat.exec_args(
                "conntrack",
                &["-D", "-p", "udp", "--orig-src", &ip, "--sport", &port],
            ),
            None,
        )?;
        // "N flow entries have been deleted." on stderr; the exit status
        // is 1 when N is 0.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let deleted = stderr
            .lines()
            .find_map(|l| {
                let (_, rest) = l.split_once("): ")?;
                rest.split_whitespace().next()?.parse::<usize>().ok()
            })
            .ok_or_else(|| failed("conntrack -D", &output))?;
        Ok(deleted)
    }

    /// Poisons the router's entry for `orig`, the way a Linux NAT does when
    /// a flow's first datagram comes while the WAN is down: the WAN goes
    /// "down" (forwarding from site A is dropped), the table is flushed, an
    /// entry for `orig` without address translation is inserted (as one
    /// made with no WAN address to masquerade to), and the WAN comes back.
    /// From then on that 5-tuple leaves with its private source, which the
    /// far end cannot answer, for `secs` seconds: only another 5-tuple
    /// gets through.
    pub fn poison_flow(&self, orig: Tuple, secs: u32) -> io::Result<()> {
        let down = format!(
            "table ip {NFT_TABLE}_down\n\
             delete table ip {NFT_TABLE}_down\n\
             table ip {NFT_TABLE}_down {{\n\
             \x20 chain forward {{\n\
             \x20   type filter hook forward priority filter; policy accept;\n\
             \x20   ip saddr {SITE_A_NET} drop\n\
             \x20 }}\n}}\n"
        );
        self.nat.exec_with_input("nft", &["-f", "-"], Some(&down))?;
        self.conntrack_flush()?;
        let (src, dst) = (orig.src.ip().to_string(), orig.dst.ip().to_string());
        let (sport, dport) = (orig.src.port().to_string(), orig.dst.port().to_string());
        let timeout = secs.to_string();
        let inserted = self.nat.exec(
            "conntrack",
            &[
                "-I",
                "-p",
                "udp",
                "-s",
                &src,
                "-d",
                &dst,
                "--sport",
                &sport,
                "--dport",
                &dport,
                "-r",
                &dst,
                "-q",
                &src,
                "--reply-port-src",
                &dport,
                "--reply-port-dst",
                &sport,
                "-t",
                &timeout,
                "-u",
                "SEEN_REPLY,ASSURED",
            ],
        );
        let up = self.nat.exec(
            "nft",
            &["delete", "table", "ip", &format!("{NFT_TABLE}_down")],
        );
        inserted?;
        up.map(drop)
    }

    /// Empties the router's connection tracking table (`conntrack -F`).
    pub fn conntrack_flush(&self) -> io::Result<()> {
        self.nat.exec("conntrack", &["-F"]).map(drop)
    }
}

/// The router's UDP timeout sysctls: unreplied, then stream.
const UDP_TIMEOUTS: [&str; 2] = [
    "net.netfilter.nf_conntrack_udp_timeout",
    "net.netfilter.nf_conntrack_udp_timeout_stream",
];

/// `addr` as an IPv4 socket address (the lab is IPv4 only).
pub fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => panic!("the NAT lab is IPv4 only, not {a}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conntrack_lines() {
        let line = "udp      17 3 src=10.10.0.2 dst=100.64.0.2 sport=4569 dport=4569 \
                    src=100.64.0.2 dst=100.64.0.1 sport=4569 dport=20001 [ASSURED] mark=0 use=1";
        let c = Conntrack::parse(line).expect("a UDP entry");
        assert_eq!(c.timeout_secs, 3);
        assert_eq!(c.orig.src, SocketAddrV4::new(A_ADDR, 4569));
        assert_eq!(c.public(), SocketAddrV4::new(NAT_PUBLIC, 20001));
        assert!(c.replied && c.assured);
        let unreplied = "udp 17 29 src=100.64.0.2 dst=100.64.0.1 sport=4569 dport=4569 \
                         [UNREPLIED] src=100.64.0.1 dst=100.64.0.2 sport=4569 dport=4569 mark=0 use=1";
        let c = Conntrack::parse(unreplied).expect("a UDP entry");
        assert!(!c.replied && !c.assured);
        assert_eq!(c.reply.dst, SocketAddrV4::new(B_ADDR, 4569));
        assert_eq!(Conntrack::parse("tcp 6 10 src=1.2.3.4"), None);
    }
}
