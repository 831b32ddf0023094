//! Real network faults between a host and its database, inside this machine: each host of a
//! test runs in a network namespace of the test's own, on a veth pair to the test's namespace,
//! where a relay forwards its database connections to the local server. The test then cuts
//! the host off (the kernel drops every packet, by nftables rules inside the namespace), drops
//! a share of its packets, adds latency in the relay, and heals it, while the host runs.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables): `tests/setup.sh` installs them. This
//! machine's kernel has no `netem` queueing discipline, so latency is the relay's (each chunk
//! it forwards waits that long), while loss and partitions are the kernel's.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

static LINKS: AtomicUsize = AtomicUsize::new(0);

/// A network namespace with a veth link to the test's namespace.
pub struct Link {
    ns: String,
    root_if: String,
    ns_if: String,
    root_ip: String,
    ns_ip: String,
    /// Milliseconds each relayed chunk waits (both ways).
    delay_ms: Arc<AtomicU64>,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (needs iproute2 and nftables: run tests/setup.sh)",
                args[0]
            )
        });
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Link {
    /// A new namespace and link (10.x.y.1 here, 10.x.y.2 in the namespace, from a range that
    /// this process and counter choose, so parallel tests never share one).
    pub fn create() -> Link {
        assert!(
            nix_is_root(),
            "network-fault tests need root (ip netns, nft): run them as root"
        );
        let k = LINKS.fetch_add(1, Ordering::Relaxed);
        let n = (std::process::id() as usize * 16 + k) % (128 * 256);
        let (x, y) = (128 + n / 256, n % 256);
        let tag = format!("{}{k}", std::process::id() % 100_000);
        let link = Link {
            ns: format!("stask-{tag}"),
            root_if: format!("sx{tag}"),
            ns_if: format!("sy{tag}"),
            root_ip: format!("10.{x}.{y}.1"),
            ns_ip: format!("10.{x}.{y}.2"),
            delay_ms: Arc::new(AtomicU64::new(0)),
        };
        run(&["ip", "netns", "add", &link.ns]);
        run(&[
            "ip",
            "link",
            "add",
            &link.root_if,
            "type",
            "veth",
            "peer",
            "name",
            &link.ns_if,
        ]);
        run(&["ip", "link", "set", &link.ns_if, "netns", &link.ns]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", link.root_ip),
            "dev",
            &link.root_if,
        ]);
        run(&["ip", "link", "set", &link.root_if, "up"]);
        link.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", link.ns_ip),
            "dev",
            &link.ns_if,
        ]);
        link.exec(&["ip", "link", "set", &link.ns_if, "up"]);
        link.exec(&["ip", "link", "set", "lo", "up"]);
        // The fault table: empty chains on both hooks, loopback always let through.
        link.exec(&["nft", "add", "table", "inet", "stask_faults"]);
        for (chain, hook) in [("out", "output"), ("in", "input")] {
            link.exec(&[
                "nft",
                "add",
                "chain",
                "inet",
                "stask_faults",
                chain,
                &format!("{{ type filter hook {hook} priority 0; }}"),
            ]);
        }
        link.set_rules(None);
        link
    }

    /// Runs a command inside the namespace.
    fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend_from_slice(args);
        run(&all);
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The host's address, inside the namespace.
    pub fn host_ip(&self) -> &str {
        &self.ns_ip
    }

    /// A relay on this link's address in the test's namespace to `target` (a local server):
    /// the address the host inside reaches `target` by.
    pub fn relay_to(&self, target: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind((self.root_ip.as_str(), 0)).expect("relay listener");
        let addr = listener.local_addr().unwrap();
        let delay = self.delay_ms.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    delay.clone(),
                );
                pipe(server, client, delay.clone());
            }
        });
        addr
    }

    fn set_rules(&self, rule: Option<&str>) {
        for (chain, dev) in [("out", "oif"), ("in", "iif")] {
            self.exec(&["nft", "flush", "chain", "inet", "stask_faults", chain]);
            let mut args = vec![
                "nft",
                "add",
                "rule",
                "inet",
                "stask_faults",
                chain,
                dev,
                "lo",
                "accept",
            ];
            self.exec(&args);
            if let Some(rule) = rule {
                args.truncate(6);
                args.extend(rule.split_whitespace());
                self.exec(&args);
            }
        }
    }

    /// Cuts the host off: every packet in or out of the namespace is dropped (connections
    /// stay open and silent, as behind a failed switch).
    pub fn cut(&self) {
        self.set_rules(Some("drop"));
    }

    /// Drops `percent` of the packets each way, at random.
    pub fn lose(&self, percent: u32) {
        self.set_rules(Some(&format!("numgen random mod 100 < {percent} drop")));
    }

    /// Adds `ms` of latency to every chunk the relays forward, each way.
    pub fn delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.set_rules(None);
        self.delay(0);
    }
}

/// Copies `from` to `to` on a thread of its own, each chunk after the current delay.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let ms = delay.load(Ordering::Relaxed);
            if ms > 0 {
                std::thread::sleep(Duration::from_millis(ms));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

fn nix_is_root() -> bool {
    // SAFETY-free: `id -u` rather than libc, to keep this crate without unsafe code.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the other end.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_if])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
