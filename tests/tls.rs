//! TLS on an acceptor port, against the real binary: certificates made by
//! the test (a CA, the server's, clients'), a rustls client that logs on and
//! trades, a plain-TCP client on the TLS port that is dropped while the TLS
//! session carries on, client certificates required with
//! SocketClientCAFile, and bad certificate files stopping `fixgw run` and
//! `fixgw check-config` with the settings line.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{fixgw, Client, Gateway, Transport};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

impl Transport for TlsStream {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// A certificate and its key.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A certificate signed by this CA; also written as PEM to
    /// `dir/NAME.pem` and `dir/NAME-key.pem`.
    fn issue(&self, dir: &Path, name: &str, server: bool) -> Identity {
        let sans = if server {
            vec!["localhost".to_string(), "127.0.0.1".to_string()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
        Identity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        }
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, self.issuer.pem()).unwrap();
    }
}

/// `ca.pem`, `server.pem` and `server-key.pem` in `dir`; returns the CA.
fn server_files(dir: &Path) -> Ca {
    let ca = Ca::new("fixgw test CA");
    ca.write(&dir.join("ca.pem"));
    ca.issue(dir, "server", true);
    ca
}

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
StartTime=00:00:00
EndTime=00:00:00
SocketUseSSL=Y
SocketCertificateFile={DIR}/server.pem
SocketPrivateKeyFile={DIR}/server-key.pem
[SESSION]
TargetCompID=CLIENT1
SessionRole=order-entry
[SESSION]
TargetCompID=CLIENT2
SessionRole=order-entry
"
);

/// CFG with the files in `dir`, and `extra` lines after SocketUseSSL=Y.
fn cfg(dir: &Path, extra: &str) -> String {
    let text = CFG.replace("{DIR}", &dir.display().to_string());
    if extra.is_empty() {
        return text;
    }
    text.replace("SocketUseSSL=Y", &format!("SocketUseSSL=Y\n{extra}"))
}

/// A rustls client trusting `ca`, presenting `identity` if given.
fn client_config(ca: &Ca, identity: Option<Identity>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder.with_client_auth_cert(id.chain, id.key).unwrap(),
    })
}

/// Connects and completes the handshake (the client's side of it).
fn tls_connect(port: u16, config: Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let server = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(config, server).map_err(std::io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// A FIX client over TLS.
fn tls_client(port: u16, config: Arc<ClientConfig>, sender: &str) -> Client {
    let stream = tls_connect(port, config).expect("TLS handshake");
    Client::over(Box::new(stream), sender, "FIXGW")
}

/// Logs on, sends a buy limit order and checks its ExecutionReport (New).
fn logon_and_order(c: &mut Client, cl_ord_id: &str) {
    c.logon(&[]);
    c.limit_order(cl_ord_id, "1", "100", "150.00", "AAPL");
    let er = c.expect("8");
    assert_eq!(er.get_str(11), Some(cl_ord_id), "{er:?}");
    assert_eq!(er.get_str(150), Some("0"), "{er:?}");
    assert_eq!(er.get_str(39), Some("0"), "{er:?}");
}

/// True when the server refuses `config`: the handshake fails, or the
/// connection closes after a Logon without a reply.
fn refused(port: u16, config: Arc<ClientConfig>, sender: &str) -> bool {
    let Ok(stream) = tls_connect(port, config) else {
        return true;
    };
    let mut c = Client::over(Box::new(stream), sender, "FIXGW");
    let _ = c.try_send("A", &[(98, "0"), (108, "30")]);
    c.expect_disconnect(Duration::from_secs(5))
}

/// The gateway's log without terminal colours.
fn log_of(gw: &Gateway) -> String {
    let log = std::fs::read_to_string(&gw.log).unwrap_or_default();
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The gateway's log once it has `times` lines with `needle` (or after 10 s):
/// a refusal is logged a little after the client saw it.
fn wait_for_log(gw: &Gateway, needle: &str, times: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = log_of(gw);
        if log.matches(needle).count() >= times || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tls_session_trades_and_a_plain_client_is_dropped_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ca = server_files(dir.path());
    let gw = Gateway::start(dir.path(), &cfg(dir.path(), "LogonTimeout=2"));

    // A connection that never starts its handshake does not hold up others,
    // and is closed after LogonTimeout.
    let mut idle = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    let mut c1 = tls_client(gw.port, client_config(&ca, None), "CLIENT1");
    logon_and_order(&mut c1, "tls-1");

    // Plain FIX on the TLS port: the handshake fails, the connection closes.
    let mut plain = Client::connect(gw.port, "CLIENT2", "FIXGW");
    plain.send("A", &[(98, "0"), (108, "30")]);
    assert!(plain.expect_disconnect(Duration::from_secs(5)));
    let log = wait_for_log(&gw, "TLS handshake failed", 1);
    let line = log
        .lines()
        .find(|l| l.contains("TLS handshake failed"))
        .unwrap_or_else(|| panic!("no handshake warning in the log:\n{log}"));
    assert!(
        line.contains("WARN") && line.contains("peer=127.0.0.1:"),
        "{line}"
    );

    // The TLS session is untouched: it still trades, and a second TLS
    // client logs on beside it.
    c1.send("1", &[(112, "still-there")]);
    let hb = c1.expect("0");
    assert_eq!(hb.get_str(112), Some("still-there"));
    let mut c2 = tls_client(gw.port, client_config(&ca, None), "CLIENT2");
    c2.logon(&[]);
    c2.limit_order("tls-2", "2", "40", "150.00", "AAPL");
    let fill = (0..3)
        .map(|_| c2.expect("8"))
        .find(|er| er.get_str(150) == Some("F"))
        .expect("CLIENT2 gets its fill");
    assert_eq!(fill.get_str(11), Some("tls-2"), "{fill:?}");
    let fill = c1.expect("8");
    assert_eq!(
        (fill.get_str(11), fill.get_str(150), fill.get_str(32)),
        (Some("tls-1"), Some("F"), Some("40")),
        "{fill:?}"
    );
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(
        std::io::Read::read(&mut idle, &mut [0u8; 16]),
        Ok(0)
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    let log = wait_for_log(&gw, "TLS handshake not done within LogonTimeout", 1);
    assert!(
        log.contains("TLS handshake not done within LogonTimeout"),
        "{log}"
    );

    // A client that does not trust the server's CA gives up; we log it.
    let other = Ca::new("another CA");
    assert!(refused(gw.port, client_config(&other, None), "CLIENT2"));
}

#[test]
fn client_certificates_are_required_with_a_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = server_files(dir.path());
    let text = cfg(
        dir.path(),
        &format!("SocketClientCAFile={}/ca.pem", dir.path().display()),
    );
    let gw = Gateway::start(dir.path(), &text);

    assert!(
        refused(gw.port, client_config(&ca, None), "CLIENT1"),
        "a client without a certificate logged on"
    );
    let stranger = Ca::new("not the client CA").issue(dir.path(), "stranger", false);
    assert!(
        refused(gw.port, client_config(&ca, Some(stranger)), "CLIENT1"),
        "a client with a certificate from another CA logged on"
    );
    let log = wait_for_log(&gw, "TLS handshake failed", 2);
    assert!(
        log.matches("TLS handshake failed").count() >= 2,
        "both refusals are logged:\n{log}"
    );

    let id = ca.issue(dir.path(), "client1", false);
    let mut c = tls_client(gw.port, client_config(&ca, Some(id)), "CLIENT1");
    logon_and_order(&mut c, "mtls-1");
}

/// `fixgw run --config CONFIG --data DATA`, which must exit within 30 s (it
/// is killed otherwise): (exit code, stderr).
fn run_until_exit(config: &str, data: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fixgw"))
        .args(["run", "--config", config, "--data", data])
        .current_dir(common::repo_path(""))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run fixgw");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Writes `text` as the settings file (port 0) and returns its path.
fn write_cfg(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("tls.cfg");
    let text = text.replace("{PORT}", "0").replace(
        "{DICT}",
        &common::repo_path("dictionaries/FIX44.xml")
            .display()
            .to_string(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_tls_files_stop_run_and_check_config_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    server_files(dir.path());
    let d = dir.path().display().to_string();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();

    let good = write_cfg(dir.path(), &cfg(dir.path(), ""));
    let r = fixgw(&["check-config", "--config", good.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let out = r.out;
    assert!(
        out.contains(&format!(
            "127.0.0.1:0  CLIENT1, CLIENT2  TLS {d}/server.pem"
        )),
        "{out}"
    );

    let cases = [
        (
            "server.pem",
            "missing.pem",
            format!("tls.cfg:11: SocketCertificateFile=\"{d}/missing.pem\": cannot read: No such file or directory"),
        ),
        (
            "server-key.pem",
            "server.pem",
            format!("tls.cfg:12: SocketPrivateKeyFile=\"{d}/server.pem\": no PEM PRIVATE KEY"),
        ),
        (
            "server.pem",
            "server-key.pem",
            format!("tls.cfg:11: SocketCertificateFile=\"{d}/server-key.pem\": no PEM CERTIFICATE block found"),
        ),
    ];
    for (from, to, expected) in &cases {
        let text = cfg(dir.path(), "").replace(&format!("/{from}\n"), &format!("/{to}\n"));
        let path = write_cfg(dir.path(), &text);
        let config = path.to_str().unwrap();
        let (code, err) = run_until_exit(config, data);
        assert_ne!(code, 0, "fixgw run started with {to}: {err}");
        assert!(err.contains(expected.as_str()), "run: {err}");
        let r = fixgw(&["check-config", "--config", config]);
        assert_ne!(r.code, 0, "check-config accepted {to}: {}", r.out);
        assert!(r.err.contains(expected.as_str()), "check-config: {}", r.err);
    }

    // Two sessions on one port, one with TLS and one without.
    let text = cfg(dir.path(), "").replace(
        "TargetCompID=CLIENT2\n",
        "TargetCompID=CLIENT2\nSocketUseSSL=N\n",
    );
    let path = write_cfg(dir.path(), &text);
    let r = fixgw(&["check-config", "--config", path.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(
        r.err.contains("tls.cfg:16: this session listens on 127.0.0.1:0 like the session at line 13, but with other TLS settings"),
        "{}",
        r.err
    );
}
