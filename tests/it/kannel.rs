//! Kannel, the real SMS gateway, for the SMS tests: Debian's `kannel` (`bearerbox`, `smsbox`) and
//! `kannel-extras` (its fake SMS centre, `fakesmsc`), which `.ci/run` installs. Each test gets its own
//! `kannel.conf` in a temporary directory with loopback ports picked free. Missing Kannel skips the
//! test with a line saying so, except in CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const BEARERBOX: &str = "/usr/sbin/bearerbox";
const SMSBOX: &str = "/usr/sbin/smsbox";
const FAKESMSC: &str = "/usr/lib/kannel/test/fakesmsc";

/// The sendsms-user the tests' channels send as.
pub const SENDSMS_USER: &str = "helpline";
pub const SENDSMS_PASSWORD: &str = "sendsms-secret";

/// Whether Kannel is installed; in CI its absence fails the test.
pub fn available() -> bool {
    let missing: Vec<&str> = [BEARERBOX, SMSBOX, FAKESMSC].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("Kannel is not installed ({missing:?} missing): apt-get install kannel kannel-extras");
    if std::env::var_os("CI").is_some() {
        panic!("the SMS tests cannot run in CI: {why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port()
}

/// Waits until something listens on `port` (Kannel's boxes start in a moment).
async fn listening(port: u16, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running Kannel: bearerbox with a fake SMSC, smsbox with the sendsms interface and one
/// sms-service posting every inbound message to `post_url`.
pub struct Kannel {
    dir: tempfile::TempDir,
    pub smsc_port: u16,
    pub sendsms_port: u16,
    smsbox_port: u16,
    boxes: Vec<Child>,
}

impl Kannel {
    /// Writes its configuration and starts both boxes.
    pub async fn start(post_url: &str) -> Kannel {
        let dir = tempfile::tempdir().expect("temp dir");
        let (admin, smsbox_port, smsc_port, sendsms_port) = (free_port(), free_port(), free_port(), free_port());
        let d = dir.path().display();
        let conf = format!(
            r#"group = core
admin-port = {admin}
admin-password = admin-secret
admin-interface = 127.0.0.1
admin-allow-ip = 127.0.0.1
smsbox-port = {smsbox_port}
box-allow-ip = 127.0.0.1
log-file = "{d}/bearerbox.log"
log-level = 1
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
host = 127.0.0.1
port = {smsc_port}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox_port}
sendsms-port = {sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{d}/smsbox.log"
log-level = 1
http-request-retry = 3
http-queue-delay = 1

group = sendsms-user
username = {SENDSMS_USER}
password = {SENDSMS_PASSWORD}
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = true
max-messages = 0
post-url = "{post_url}"
"#
        );
        std::fs::write(dir.path().join("kannel.conf"), conf).expect("kannel.conf");
        let mut kannel = Kannel { dir, smsc_port, sendsms_port, smsbox_port, boxes: Vec::new() };
        kannel.up().await;
        kannel
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("kannel.conf")
    }

    /// Starts bearerbox, then smsbox, and waits until sendsms answers.
    pub async fn up(&mut self) {
        let conf = self.conf();
        let spawn = |bin: &str| {
            Command::new(bin).arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true).spawn().expect("start a Kannel box")
        };
        self.boxes.push(spawn(BEARERBOX));
        listening(self.smsbox_port, "bearerbox").await;
        self.boxes.push(spawn(SMSBOX));
        listening(self.sendsms_port, "smsbox's sendsms").await;
    }

    /// Kills both boxes (Kannel down: sendsms refuses connections).
    pub async fn down(&mut self) {
        for mut b in self.boxes.drain(..) {
            let _ = b.start_kill();
            let _ = b.wait().await;
        }
    }

    /// Kannel's logs (for a failing assertion's message).
    pub fn logs(&self) -> String {
        ["bearerbox.log", "smsbox.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .map(|s| s.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"))
            .collect::<Vec<_>>()
            .join("\n----\n")
    }
}

/// A message the fake SMS centre got from Kannel (a reply on its way to a phone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub from: String,
    pub to: String,
    pub text: String,
}

/// Kannel's fake SMS centre: sends the phone's messages given at its start into Kannel, and prints
/// every message Kannel hands it (`Got message N: <from to coding data>`), which [`FakeSmsc::next`] reads.
pub struct FakeSmsc {
    child: Child,
    got: mpsc::UnboundedReceiver<Received>,
}

impl FakeSmsc {
    /// Connects to bearerbox and sends `messages` (`"sender receiver text the words"`), once each.
    pub async fn start(kannel: &Kannel, messages: &[&str]) -> FakeSmsc {
        let mut cmd = Command::new(FAKESMSC);
        cmd.args(["-H", "127.0.0.1", "-r", &kannel.smsc_port.to_string(), "-i", "0.01", "-m", &messages.len().to_string()]);
        if messages.is_empty() {
            // It needs one to know its format; it sends none (-m 0).
            cmd.arg("0 0 text nothing");
        }
        cmd.args(messages);
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true).spawn().expect("start fakesmsc");
        let stderr = child.stderr.take().expect("fakesmsc's output");
        let (tx, got) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(m) = parse_got(&line) {
                    let _ = tx.send(m);
                }
            }
        });
        FakeSmsc { child, got }
    }

    /// The next message Kannel handed the fake SMS centre.
    pub async fn next(&mut self, kannel: &Kannel) -> Received {
        match tokio::time::timeout(Duration::from_secs(30), self.got.recv()).await {
            Ok(Some(m)) => m,
            _ => panic!("the fake SMS centre got nothing from Kannel; its logs:\n{}", kannel.logs()),
        }
    }

    /// Whether it got something else (without waiting).
    pub fn try_next(&mut self) -> Option<Received> {
        self.got.try_recv().ok()
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// `... DEBUG: Got message 1: <116111 37369123456 ucs-2 %00S%00a...>` → the message.
fn parse_got(line: &str) -> Option<Received> {
    let rest = &line[line.find("Got message ")?..];
    let body = rest[rest.find('<')? + 1..].trim_end().strip_suffix('>')?;
    let mut parts = body.splitn(4, ' ');
    let (from, to, coding, data) = (parts.next()?, parts.next()?, parts.next()?, parts.next().unwrap_or(""));
    let bytes = percent_decode(data);
    let text = match coding {
        "ucs-2" | "ucs2" => {
            let units: Vec<u16> = bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])).collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(&bytes).into_owned(),
    };
    Some(Received { from: from.to_string(), to: to.to_string(), text })
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[test]
fn the_fake_smscs_lines_are_read() {
    let line = "2026-12-07 23:54:11 [16267] [0] DEBUG: Got message 1: <116111 37369123456 ucs-2 %00S%00a%00l%00u%00t%00+%00a%00c%00o%00l%00o%00+%02%19%00i>";
    assert_eq!(parse_got(line), Some(Received { from: "116111".into(), to: "37369123456".into(), text: "Salut acolo și".into() }));
    let plain = "x DEBUG: Got message 2: <1 2 text Hello+there%21>";
    assert_eq!(parse_got(plain).map(|m| m.text), Some("Hello there!".into()));
}
