//! QuickFIX-format settings files (`[DEFAULT]` inherited by each
//! `[SESSION]`). Unknown keys are tolerated; a bad value stops start-up with
//! a message naming the file, line, key and what is allowed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fix::dictionary::Dictionary;
use crate::fix::time::Precision;

use super::config::{
    SessionConfig, SessionRole, Throttle, ThrottleAction, DEFAULT_MAX_OUTBOUND_QUEUE,
};
use super::schedule::{parse_time_of_day, parse_utc_offset, Schedule};
use super::tls::{EndpointTls, TlsSettings};

/// A settings error with its location.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line that is neither a section, a key=value, a comment nor blank.
    #[error("{path}:{line}: cannot parse {text:?}: expected [DEFAULT], [SESSION] or Key=Value")]
    Syntax {
        /// File.
        path: String,
        /// 1-based line.
        line: usize,
        /// The line.
        text: String,
    },
    /// A value that is not allowed for its key.
    #[error("{path}:{line}: {key}={value:?} is invalid: {allowed}")]
    BadValue {
        /// File.
        path: String,
        /// 1-based line of the key (0 if it has no line).
        line: usize,
        /// Key.
        key: String,
        /// Value given.
        value: String,
        /// What would have been accepted.
        allowed: String,
    },
    /// A required key is absent.
    #[error("{path}: session at line {line}: missing {key}")]
    Missing {
        /// File.
        path: String,
        /// Line of the `[SESSION]` header.
        line: usize,
        /// Key.
        key: String,
    },
    /// A file named by a key (DataDictionary, the TLS files) failed to load.
    #[error("{path}:{line}: {key}={file:?}: {message}")]
    File {
        /// Settings file.
        path: String,
        /// Line of the key.
        line: usize,
        /// Key.
        key: String,
        /// The file named.
        file: String,
        /// Loader message.
        message: String,
    },
    /// Sessions on one port that disagree on a per-port setting.
    #[error("{path}:{line}: this session listens on {endpoint} like the session at line {first}, but with other TLS settings ({keys}): every session on one port must agree")]
    PortConflict {
        /// File.
        path: String,
        /// Line of the later `[SESSION]`.
        line: usize,
        /// Line of the first `[SESSION]` on that port.
        first: usize,
        /// address:port.
        endpoint: String,
        /// The keys that must agree.
        keys: String,
    },
    /// Two sessions with the same identity.
    #[error("{path}:{line}: duplicate session {session}")]
    Duplicate {
        /// File.
        path: String,
        /// Line of the second `[SESSION]`.
        line: usize,
        /// Session id.
        session: String,
    },
}

/// One `Key=Value` with the line it came from.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The value, trimmed.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// A section's keys, with `[DEFAULT]` already merged in.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// Line of the `[SESSION]` header (0 for DEFAULT).
    pub line: usize,
    /// Keys and values.
    pub entries: BTreeMap<String, Entry>,
}

/// A parsed settings file.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Where it was read from (for messages).
    pub path: String,
    /// The `[DEFAULT]` section.
    pub default: Section,
    /// Each `[SESSION]`, with defaults merged in.
    pub sessions: Vec<Section>,
}

impl Settings {
    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Settings::parse(&path.display().to_string(), &text)
    }

    /// Parses settings text; `path` is used in messages.
    pub fn parse(path: &str, text: &str) -> Result<Settings, SettingsError> {
        let mut default = Section::default();
        let mut raw_sessions: Vec<Section> = Vec::new();
        enum Current {
            None,
            Default,
            Session,
        }
        let mut current = Current::None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                continue;
            }
            if t.eq_ignore_ascii_case("[DEFAULT]") {
                current = Current::Default;
                continue;
            }
            if t.eq_ignore_ascii_case("[SESSION]") {
                raw_sessions.push(Section {
                    line,
                    entries: BTreeMap::new(),
                });
                current = Current::Session;
                continue;
            }
            let Some((k, v)) = t.split_once('=') else {
                return Err(SettingsError::Syntax {
                    path: path.to_string(),
                    line,
                    text: raw.to_string(),
                });
            };
            let entry = Entry {
                value: v.trim().to_string(),
                line,
            };
            let key = k.trim().to_string();
            match current {
                Current::Default => {
                    default.entries.insert(key, entry);
                }
                Current::Session => {
                    if let Some(s) = raw_sessions.last_mut() {
                        s.entries.insert(key, entry);
                    }
                }
                Current::None => {
                    return Err(SettingsError::Syntax {
                        path: path.to_string(),
                        line,
                        text: format!("{raw} (key outside a section)"),
                    })
                }
            }
        }
        let sessions = raw_sessions
            .into_iter()
            .map(|s| {
                let mut merged = default.entries.clone();
                merged.extend(s.entries);
                Section {
                    line: s.line,
                    entries: merged,
                }
            })
            .collect();
        Ok(Settings {
            path: path.to_string(),
            default,
            sessions,
        })
    }
}

/// Typed access to a section's values with precise errors.
struct Reader<'a> {
    path: &'a str,
    section: &'a Section,
}

impl Reader<'_> {
    fn raw(&self, key: &str) -> Option<&Entry> {
        self.section.entries.get(key)
    }

    fn bad(&self, key: &str, e: &Entry, allowed: &str) -> SettingsError {
        SettingsError::BadValue {
            path: self.path.to_string(),
            line: e.line,
            key: key.to_string(),
            value: e.value.clone(),
            allowed: allowed.to_string(),
        }
    }

    /// The file named by `key` cannot be used.
    fn file_error(&self, key: &str, message: String) -> SettingsError {
        let (line, file) = self
            .raw(key)
            .map_or((self.section.line, String::new()), |e| {
                (e.line, e.value.clone())
            });
        SettingsError::File {
            path: self.path.to_string(),
            line,
            key: key.to_string(),
            file,
            message,
        }
    }

    fn string(&self, key: &str) -> Option<String> {
        self.raw(key).map(|e| e.value.clone())
    }

    fn required(&self, key: &str) -> Result<String, SettingsError> {
        match self.raw(key) {
            Some(e) if !e.value.is_empty() => Ok(e.value.clone()),
            _ => Err(SettingsError::Missing {
                path: self.path.to_string(),
                line: self.section.line,
                key: key.to_string(),
            }),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, SettingsError> {
        match self.raw(key) {
            None => Ok(default),
            Some(e) => match e.value.as_str() {
                "Y" | "y" | "true" => Ok(true),
                "N" | "n" | "false" => Ok(false),
                _ => Err(self.bad(key, e, "expected Y or N")),
            },
        }
    }

    fn number<T: std::str::FromStr>(
        &self,
        key: &str,
        default: T,
        allowed: &str,
    ) -> Result<T, SettingsError> {
        match self.raw(key) {
            None => Ok(default),
            Some(e) => e.value.parse().map_err(|_| self.bad(key, e, allowed)),
        }
    }
}

/// Journaled inputs between two venue checkpoints when the settings say
/// nothing: none (the checkpoint thread costs about 9 % of the max-rate
/// throughput on a 2-core machine shared with the load generator, so the
/// benchmark configuration runs without; `sessions/gateway.cfg` sets
/// 1 000 000).
pub const DEFAULT_CHECKPOINT_INPUTS: u64 = 0;

/// Acceptor-level settings of one session: where it listens.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Address to bind (SocketAcceptAddress, default 0.0.0.0).
    pub address: String,
    /// Port (SocketAcceptPort).
    pub port: u16,
    /// TLS (SocketUseSSL=Y), loaded; the same for every session on the port.
    pub tls: Option<EndpointTls>,
}

/// Everything a settings file configures.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Sessions with their endpoint.
    pub sessions: Vec<(Arc<SessionConfig>, Endpoint)>,
    /// FileStorePath of the first session (one store per gateway).
    pub file_store_path: Option<PathBuf>,
    /// MaxMessageSize in bytes.
    pub max_message_size: usize,
    /// ValidateLengthAndChecksum.
    pub validate_length_and_checksum: bool,
    /// SocketNodelay.
    pub socket_nodelay: bool,
    /// LogonTimeout for connections not yet routed to a session.
    pub logon_timeout_secs: u32,
    /// Connection attempts per second allowed from one address (0: no limit).
    pub connection_rate_limit: f64,
    /// Failed Logons per minute after which an address is refused for the
    /// rest of that minute (0: no limit).
    pub max_failed_logons: u32,
    /// CheckpointInputs: journaled inputs between two venue checkpoints
    /// (0: none; start-up then replays the whole journal).
    pub checkpoint_inputs: u64,
    /// CompactStore: with checkpoints, the records nothing needs any more
    /// are deleted, at start-up (`BatchLog::compact`) and while running,
    /// each time a checkpoint is stored (`Core::compacting`); off, the
    /// whole journal stays.
    pub compact_store: bool,
    /// The raw file, for settings read by other layers.
    pub raw: Settings,
}

impl GatewaySettings {
    /// Loads a file and builds every session (loading dictionaries).
    pub fn load(path: &Path) -> Result<GatewaySettings, SettingsError> {
        GatewaySettings::from_settings(Settings::load(path)?)
    }

    /// Builds sessions from parsed settings.
    pub fn from_settings(settings: Settings) -> Result<GatewaySettings, SettingsError> {
        let mut dictionaries: HashMap<PathBuf, Arc<Dictionary>> = HashMap::new();
        let mut tls_configs: HashMap<TlsSettings, EndpointTls> = HashMap::new();
        // (address, port) -> line of its first session, its TLS settings.
        let mut ports: HashMap<(String, u16), (usize, Option<TlsSettings>)> = HashMap::new();
        let mut sessions = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for section in &settings.sessions {
            let r = Reader {
                path: &settings.path,
                section,
            };
            let (cfg, endpoint) = build_session(&r, &mut dictionaries, &mut tls_configs)?;
            let tls = endpoint.tls.as_ref().map(|t| t.settings.clone());
            let port = (endpoint.address.clone(), endpoint.port);
            match ports.get(&port) {
                Some((first, first_tls)) if *first_tls != tls => {
                    return Err(SettingsError::PortConflict {
                        path: settings.path.clone(),
                        line: section.line,
                        first: *first,
                        endpoint: format!("{}:{}", port.0, port.1),
                        keys: TLS_KEYS.join(", "),
                    });
                }
                Some(_) => {}
                None => {
                    ports.insert(port, (section.line, tls));
                }
            }
            if !seen.insert(cfg.id.clone()) {
                return Err(SettingsError::Duplicate {
                    path: settings.path.clone(),
                    line: section.line,
                    session: cfg.id.to_string(),
                });
            }
            sessions.push((Arc::new(cfg), endpoint));
        }
        let d = Reader {
            path: &settings.path,
            section: settings.sessions.first().unwrap_or(&settings.default),
        };
        Ok(GatewaySettings {
            file_store_path: d.string("FileStorePath").map(PathBuf::from),
            max_message_size: d.number(
                "MaxMessageSize",
                crate::fix::codec::DEFAULT_MAX_MESSAGE_SIZE,
                "expected a size in bytes",
            )?,
            validate_length_and_checksum: d.bool("ValidateLengthAndChecksum", true)?,
            socket_nodelay: d.bool("SocketNodelay", true)?,
            logon_timeout_secs: d.number("LogonTimeout", 10, "expected whole seconds")?,
            connection_rate_limit: d.number(
                "ConnectionRateLimit",
                100.0,
                "expected connection attempts per second per address (0: no limit)",
            )?,
            max_failed_logons: d.number(
                "MaxFailedLogons",
                5,
                "expected failed Logons per minute per address (0: no limit)",
            )?,
            checkpoint_inputs: d.number(
                "CheckpointInputs",
                DEFAULT_CHECKPOINT_INPUTS,
                "expected a number of journaled inputs (0: no checkpoints)",
            )?,
            compact_store: d.bool("CompactStore", true)?,
            sessions,
            raw: settings,
        })
    }
}

/// `ThrottleRate` (application messages per second, 0 = off), `ThrottleBurst`
/// (default: one second's worth) and `ThrottleAction` (`reject` or `logout`).
fn throttle(r: &Reader<'_>) -> Result<Option<Throttle>, SettingsError> {
    const RATE: &str = "expected messages per second (a positive number; 0 turns it off)";
    let rate: f64 = r.number("ThrottleRate", 0.0, RATE)?;
    if let Some(e) = r
        .raw("ThrottleRate")
        .filter(|_| !(rate.is_finite() && rate >= 0.0))
    {
        return Err(r.bad("ThrottleRate", e, RATE));
    }
    if rate == 0.0 {
        return Ok(None);
    }
    const BURST: &str = "expected a number of messages, at least 1";
    let burst: f64 = r.number("ThrottleBurst", rate.max(1.0), BURST)?;
    if let Some(e) = r
        .raw("ThrottleBurst")
        .filter(|_| !(burst.is_finite() && burst >= 1.0))
    {
        return Err(r.bad("ThrottleBurst", e, BURST));
    }
    let action = match r.raw("ThrottleAction") {
        None => ThrottleAction::Reject,
        Some(e) => match e.value.as_str() {
            "reject" => ThrottleAction::Reject,
            "logout" => ThrottleAction::Logout,
            _ => return Err(r.bad("ThrottleAction", e, "expected reject or logout")),
        },
    };
    Ok(Some(Throttle {
        rate,
        burst,
        action,
    }))
}

/// The per-port TLS keys.
const TLS_KEYS: [&str; 4] = [
    "SocketUseSSL",
    "SocketCertificateFile",
    "SocketPrivateKeyFile",
    "SocketClientCAFile",
];

fn build_session(
    r: &Reader<'_>,
    dictionaries: &mut HashMap<PathBuf, Arc<Dictionary>>,
    tls_configs: &mut HashMap<TlsSettings, EndpointTls>,
) -> Result<(SessionConfig, Endpoint), SettingsError> {
    if let Some(e) = r.raw("ConnectionType") {
        if e.value != "acceptor" {
            return Err(r.bad(
                "ConnectionType",
                e,
                "fixgw runs acceptor sessions only (ConnectionType=acceptor); use `fixgw load` as an initiator",
            ));
        }
    }
    let begin = r.required("BeginString")?;
    if begin != "FIX.4.4" {
        let e = r.raw("BeginString").cloned().unwrap_or(Entry {
            value: begin.clone(),
            line: r.section.line,
        });
        return Err(r.bad("BeginString", &e, "only FIX.4.4 is supported"));
    }
    let sender = r.required("SenderCompID")?;
    let target = r.required("TargetCompID")?;
    let mut cfg = SessionConfig::new(&begin, &sender, &target);
    if let Some(e) = r.raw("SessionRole") {
        cfg.role = SessionRole::parse(&e.value).ok_or_else(|| {
            r.bad(
                "SessionRole",
                e,
                "expected order-entry, market-data, drop-copy or echo",
            )
        })?;
    }
    if r.raw("HeartBtInt").is_some() {
        cfg.heart_bt_int = Some(r.number("HeartBtInt", 30, "expected whole seconds")?);
    }
    cfg.reset_on_logon = r.bool("ResetOnLogon", false)?;
    cfg.reset_on_logout = r.bool("ResetOnLogout", false)?;
    cfg.reset_on_disconnect = r.bool("ResetOnDisconnect", false)?;
    cfg.check_latency = r.bool("CheckLatency", true)?;
    cfg.max_latency_secs = r.number("MaxLatency", 120, "expected whole seconds")?;
    cfg.logon_timeout_secs = r.number("LogonTimeout", 10, "expected whole seconds")?;
    cfg.logout_timeout_secs = r.number("LogoutTimeout", 2, "expected whole seconds")?;
    cfg.persist_messages = r.bool("PersistMessages", true)?;
    cfg.send_redundant_resend_requests = r.bool("SendRedundantResendRequests", false)?;
    cfg.send_next_expected_msg_seq_num = r.bool("SendNextExpectedMsgSeqNum", false)?;
    cfg.check_comp_id = r.bool("CheckCompID", true)?;
    cfg.validation.check_fields_out_of_order = r.bool("ValidateFieldsOutOfOrder", true)?;
    cfg.validation.check_fields_have_values = r.bool("ValidateFieldsHaveValues", true)?;
    cfg.validation.check_user_defined_fields = r.bool("ValidateUserDefinedFields", true)?;
    cfg.validation.allow_unknown_msg_fields = r.bool("AllowUnknownMsgFields", false)?;
    cfg.use_data_dictionary = r.bool("UseDataDictionary", true)?;
    cfg.cancel_on_disconnect = r.bool("CancelOnDisconnect", false)?;
    cfg.username = r.string("Username").filter(|s| !s.is_empty());
    cfg.password = r.string("Password").filter(|s| !s.is_empty());
    cfg.send_trd_match_id = r.bool("SendTrdMatchID", false)?;
    cfg.send_rpt_seq = r.bool("SendRptSeq", true)?;
    const QUEUE_ALLOWED: &str = "expected a number of messages, at least 16";
    cfg.max_outbound_queue = r.number(
        "MaxOutboundQueue",
        DEFAULT_MAX_OUTBOUND_QUEUE,
        QUEUE_ALLOWED,
    )?;
    if let Some(e) = r
        .raw("MaxOutboundQueue")
        .filter(|_| cfg.max_outbound_queue < 16)
    {
        return Err(r.bad("MaxOutboundQueue", e, QUEUE_ALLOWED));
    }
    cfg.throttle = throttle(r)?;
    if let Some(e) = r.raw("AllowedRemoteAddresses") {
        for a in comma_list(&e.value) {
            let ip = a.parse().map_err(|_| {
                r.bad(
                    "AllowedRemoteAddresses",
                    e,
                    "expected IP addresses, comma-separated (e.g. 127.0.0.1,10.1.2.3)",
                )
            })?;
            cfg.allowed_remote_addresses.push(ip);
        }
    }
    for (key, list) in [
        ("DropCopySessions", &mut cfg.drop_copy_sessions),
        ("DropCopyAccounts", &mut cfg.drop_copy_accounts),
    ] {
        if let Some(e) = r.raw(key) {
            if cfg.role != SessionRole::DropCopy {
                return Err(r.bad(key, e, "only valid with SessionRole=drop-copy"));
            }
            *list = comma_list(&e.value).map(str::to_string).collect();
        }
    }
    cfg.file_log_path = r
        .string("FileLogPath")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    if let Some(e) = r.raw("LogRedactTags") {
        cfg.log_redact_tags = comma_list(&e.value)
            .map(|t| t.parse::<u32>().ok().filter(|&t| t > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                r.bad(
                    "LogRedactTags",
                    e,
                    "expected comma-separated tag numbers, e.g. 553,9001",
                )
            })?;
    }
    if let Some(e) = r.raw("TimeStampPrecision") {
        let digits: u32 = e
            .value
            .parse()
            .map_err(|_| r.bad("TimeStampPrecision", e, "expected 0, 3, 6 or 9"))?;
        cfg.timestamp_precision = Precision::from_digits(digits)
            .ok_or_else(|| r.bad("TimeStampPrecision", e, "expected 0, 3, 6 or 9"))?;
    }
    cfg.schedule = schedule(r)?;
    if cfg.use_data_dictionary {
        if let Some(e) = r.raw("DataDictionary") {
            let file = PathBuf::from(&e.value);
            let dict = match dictionaries.get(&file) {
                Some(d) => d.clone(),
                None => {
                    let d = Dictionary::from_file(&file)
                        .map_err(|err| r.file_error("DataDictionary", err.to_string()))?;
                    let d = Arc::new(d);
                    dictionaries.insert(file.clone(), d.clone());
                    d
                }
            };
            cfg.dictionary = Some(dict);
            cfg.dictionary_path = Some(file);
        }
    }
    let port_entry = r
        .raw("SocketAcceptPort")
        .ok_or_else(|| SettingsError::Missing {
            path: r.path.to_string(),
            line: r.section.line,
            key: "SocketAcceptPort".to_string(),
        })?;
    let port: u16 = port_entry.value.parse().map_err(|_| {
        r.bad(
            "SocketAcceptPort",
            port_entry,
            "expected a TCP port 0-65535",
        )
    })?;
    let endpoint = Endpoint {
        address: r
            .string("SocketAcceptAddress")
            .unwrap_or_else(|| "0.0.0.0".to_string()),
        port,
        tls: tls(r, tls_configs)?,
    };
    Ok((cfg, endpoint))
}

/// SocketUseSSL=Y: the files it needs, loaded (once per distinct settings).
fn tls(
    r: &Reader<'_>,
    loaded: &mut HashMap<TlsSettings, EndpointTls>,
) -> Result<Option<EndpointTls>, SettingsError> {
    if !r.bool("SocketUseSSL", false)? {
        return Ok(None);
    }
    let settings = TlsSettings {
        certificate_file: r.required("SocketCertificateFile")?.into(),
        private_key_file: r.required("SocketPrivateKeyFile")?.into(),
        client_ca_file: r
            .string("SocketClientCAFile")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
    };
    if let Some(t) = loaded.get(&settings) {
        return Ok(Some(t.clone()));
    }
    let t = settings
        .load()
        .map_err(|e| r.file_error(e.key, e.message))?;
    loaded.insert(settings, t.clone());
    Ok(Some(t))
}

/// The non-empty items of a comma-separated value, trimmed.
fn comma_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn schedule(r: &Reader<'_>) -> Result<Schedule, SettingsError> {
    let mut s = Schedule::always();
    let time = |key: &str| -> Result<Option<u32>, SettingsError> {
        match r.raw(key) {
            None => Ok(None),
            Some(e) => parse_time_of_day(&e.value)
                .map(Some)
                .ok_or_else(|| r.bad(key, e, "expected HH:MM:SS")),
        }
    };
    let start = time("StartTime")?;
    let end = time("EndTime")?;
    if let (Some(a), Some(b)) = (start, end) {
        s.start_secs = a;
        s.end_secs = b;
    }
    if let Some(e) = r.raw("TimeZone") {
        s.utc_offset_secs = parse_utc_offset(&e.value).ok_or_else(|| {
            r.bad(
                "TimeZone",
                e,
                "expected UTC or a fixed offset such as +01:00",
            )
        })?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "\
# comment
[DEFAULT]
ConnectionType=acceptor
SocketAcceptPort=5001
SenderCompID=ISLD
ResetOnLogon=Y
UnknownKey=whatever
[SESSION]
BeginString=FIX.4.4
TargetCompID=TW44
SessionRole=echo
[SESSION]
BeginString=FIX.4.4
TargetCompID=TW
ValidateFieldsHaveValues=N
";

    #[test]
    fn defaults_are_inherited_and_unknown_keys_tolerated() {
        let s = Settings::parse("t.cfg", CFG).unwrap();
        let g = GatewaySettings::from_settings(s).unwrap();
        assert_eq!(g.sessions.len(), 2);
        let (a, ep) = &g.sessions[0];
        assert_eq!(a.id.sender_comp_id, "ISLD");
        assert_eq!(a.id.target_comp_id, "TW44");
        assert!(a.reset_on_logon);
        assert_eq!(a.role, SessionRole::Echo);
        assert_eq!(ep.port, 5001);
        assert!(!g.sessions[1].0.validation.check_fields_have_values);
    }

    #[test]
    fn bad_value_names_file_line_key_and_allowed() {
        let text = CFG.replace("ResetOnLogon=Y", "ResetOnLogon=maybe");
        let err =
            GatewaySettings::from_settings(Settings::parse("t.cfg", &text).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.cfg:6: ResetOnLogon=\"maybe\" is invalid: expected Y or N"
        );
        let text = CFG.replace("SessionRole=echo", "SessionRole=trader");
        let err =
            GatewaySettings::from_settings(Settings::parse("t.cfg", &text).unwrap()).unwrap_err();
        assert!(err.to_string().contains("t.cfg:11: SessionRole"), "{err}");
    }

    #[test]
    fn missing_keys_and_syntax_errors() {
        let err = Settings::parse("t.cfg", "[SESSION]\nnot a pair\n").unwrap_err();
        assert!(
            err.to_string().starts_with("t.cfg:2: cannot parse"),
            "{err}"
        );
        let text = CFG.replace("TargetCompID=TW44\n", "");
        let err =
            GatewaySettings::from_settings(Settings::parse("t.cfg", &text).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.cfg: session at line 8: missing TargetCompID"
        );
    }

    #[test]
    fn duplicate_session_refused() {
        let text = CFG.replace("TargetCompID=TW\n", "TargetCompID=TW44\n");
        let err =
            GatewaySettings::from_settings(Settings::parse("t.cfg", &text).unwrap()).unwrap_err();
        assert!(err.to_string().contains("duplicate session"), "{err}");
    }

    #[test]
    fn file_log_path_and_redact_tags() {
        let text = CFG.replace(
            "UnknownKey=whatever",
            "FileLogPath=logs\nLogRedactTags=553, 9001",
        );
        let g = GatewaySettings::from_settings(Settings::parse("t.cfg", &text).unwrap()).unwrap();
        let s = &g.sessions[1].0;
        assert_eq!(s.file_log_path.as_deref(), Some(Path::new("logs")));
        assert_eq!(s.log_redact_tags, [553, 9001]);
        let text = CFG.replace("UnknownKey=whatever", "LogRedactTags=553,Password");
        let err =
            GatewaySettings::from_settings(Settings::parse("t.cfg", &text).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.cfg:7: LogRedactTags=\"553,Password\" is invalid: expected comma-separated tag numbers, e.g. 553,9001"
        );
    }

    #[test]
    fn schedule_and_timezone() {
        let text = CFG.replace(
            "UnknownKey=whatever",
            "StartTime=08:00:00\nEndTime=17:00:00\nTimeZone=+02:00",
        );
        let g = GatewaySettings::from_settings(Settings::parse("t.cfg", &text).unwrap()).unwrap();
        let s = g.sessions[0].0.schedule;
        assert_eq!(
            (s.start_secs, s.end_secs, s.utc_offset_secs),
            (28800, 61200, 7200)
        );
        let text = CFG.replace("UnknownKey=whatever", "StartTime=8am\nEndTime=17:00:00");
        assert!(GatewaySettings::from_settings(Settings::parse("t.cfg", &text).unwrap()).is_err());
    }

    fn load(text: &str) -> Result<GatewaySettings, SettingsError> {
        GatewaySettings::from_settings(Settings::parse("t.cfg", text).unwrap())
    }

    /// A self-signed certificate and its key, and another key, as PEM files.
    fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = (
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("other-key.pem"),
        );
        std::fs::write(&files.0, cert.pem()).unwrap();
        std::fs::write(&files.1, key.serialize_pem()).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&files.2, other.serialize_pem()).unwrap();
        files
    }

    fn with_tls(cert: &Path, key: &Path) -> String {
        CFG.replace(
            "UnknownKey=whatever",
            &format!(
                "SocketUseSSL=Y\nSocketCertificateFile={}\nSocketPrivateKeyFile={}",
                cert.display(),
                key.display()
            ),
        )
    }

    #[test]
    fn tls_is_loaded_once_per_port() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = tls_files(dir.path());
        let g = load(&with_tls(&cert, &key)).unwrap();
        let (a, b) = (&g.sessions[0].1.tls, &g.sessions[1].1.tls);
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert!(Arc::ptr_eq(&a.config, &b.config));
        assert_eq!(a.settings.client_ca_file, None);
        assert!(load(CFG).unwrap().sessions[0].1.tls.is_none());
    }

    #[test]
    fn tls_file_errors_name_line_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, other_key) = tls_files(dir.path());
        let missing = dir.path().join("missing.pem");
        let err = load(&with_tls(&missing, &key)).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "t.cfg:8: SocketCertificateFile={:?}: cannot read: No such file or directory (os error 2)",
                missing.display().to_string()
            )
        );
        let err = load(&with_tls(&key, &key)).unwrap_err().to_string();
        assert!(
            err.starts_with("t.cfg:8: SocketCertificateFile=")
                && err.ends_with(": no PEM CERTIFICATE block found"),
            "{err}"
        );
        let err = load(&with_tls(&cert, &cert)).unwrap_err().to_string();
        assert!(
            err.starts_with("t.cfg:9: SocketPrivateKeyFile=") && err.contains("no PEM PRIVATE KEY"),
            "{err}"
        );
        let err = load(&with_tls(&cert, &other_key)).unwrap_err().to_string();
        assert!(
            err.starts_with("t.cfg:9: SocketPrivateKeyFile=")
                && err.contains("cannot be used with the certificate in"),
            "{err}"
        );
        let text = with_tls(&cert, &key).replace(
            "SocketUseSSL=Y",
            "SocketUseSSL=Y\nSocketClientCAFile=/nonexistent/ca.pem",
        );
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("t.cfg:8: SocketClientCAFile=\"/nonexistent/ca.pem\": cannot read"),
            "{err}"
        );
        let text = CFG.replace("UnknownKey=whatever", "SocketUseSSL=Y");
        assert_eq!(
            load(&text).unwrap_err().to_string(),
            "t.cfg: session at line 8: missing SocketCertificateFile"
        );
    }

    #[test]
    fn sessions_on_one_port_must_agree_on_tls() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = tls_files(dir.path());
        let text = CFG.replace(
            "ValidateFieldsHaveValues=N",
            &format!(
                "SocketUseSSL=Y\nSocketCertificateFile={}\nSocketPrivateKeyFile={}",
                cert.display(),
                key.display()
            ),
        );
        let err = load(&text).unwrap_err().to_string();
        assert_eq!(
            err,
            "t.cfg:12: this session listens on 0.0.0.0:5001 like the session at line 8, but with \
             other TLS settings (SocketUseSSL, SocketCertificateFile, SocketPrivateKeyFile, \
             SocketClientCAFile): every session on one port must agree"
        );
        // On its own port it is fine.
        let text = text.replace("SocketUseSSL=Y", "SocketAcceptPort=5002\nSocketUseSSL=Y");
        let g = load(&text).unwrap();
        assert!(g.sessions[0].1.tls.is_none() && g.sessions[1].1.tls.is_some());
    }
}
