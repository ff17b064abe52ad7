//! The admin HTTP API: health and readiness, Prometheus metrics, session,
//! book and position status, and operator actions (halt / resume a symbol,
//! kill / unblock an account, log a session out, set a disconnected
//! session's sequence numbers).
//!
//! The HTTP side (axum, on the gateway's tokio runtime) holds no state of its
//! own: every request becomes an [`AdminRequest`] sent to the core thread,
//! which answers from the live sessions and venue. Operator actions are
//! journaled with who did them and answered after the batch that carries
//! them is committed. Every operator action needs `Authorization: Bearer
//! TOKEN` with a token from `AdminToken=`; without one it gets 401 and
//! nothing happens.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// Longest wait for the core's answer.
const CORE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin API asks the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    /// Every configured session with its state and sequence numbers.
    Sessions,
    /// The book of a symbol to `depth` levels (0 = all).
    Book {
        /// Symbol.
        symbol: String,
        /// Levels per side.
        depth: usize,
    },
    /// Positions of every account in every instrument.
    Positions,
    /// Prometheus text exposition of the core's metrics.
    Metrics,
    /// An operator action, with who asked.
    Action {
        /// Token name and peer address.
        who: String,
        /// What to do.
        action: OperatorAction,
    },
}

/// Operator actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorAction {
    /// Stop trading a symbol.
    Halt(String),
    /// Resume trading a symbol.
    Resume(String),
    /// Block an account and cancel all its orders.
    Kill(String),
    /// Unblock an account.
    Unblock(String),
    /// Log a session out (by TargetCompID).
    Logout(String),
    /// Set the next sequence numbers of a disconnected session.
    SetSeq {
        /// TargetCompID.
        session: String,
        /// Next MsgSeqNum the gateway sends.
        sender: Option<u64>,
        /// Next MsgSeqNum the gateway expects.
        target: Option<u64>,
    },
}

impl OperatorAction {
    /// The journaled text of the action.
    pub fn text(&self) -> String {
        match self {
            OperatorAction::Halt(s) => format!("halt {s}"),
            OperatorAction::Resume(s) => format!("resume {s}"),
            OperatorAction::Kill(a) => format!("kill {a}"),
            OperatorAction::Unblock(a) => format!("unblock {a}"),
            OperatorAction::Logout(s) => format!("logout {s}"),
            OperatorAction::SetSeq {
                session,
                sender,
                target,
            } => {
                let mut t = format!("seq {session}");
                if let Some(n) = sender {
                    t.push_str(&format!(" sender={n}"));
                }
                if let Some(n) = target {
                    t.push_str(&format!(" target={n}"));
                }
                t
            }
        }
    }
}

/// The core's answer: an HTTP status and a body.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminReply {
    /// 200 with JSON.
    Json(serde_json::Value),
    /// 200 with Prometheus text.
    Metrics(String),
    /// An error status with a message.
    Error(u16, String),
}

/// A request on its way to the core, with where to answer.
pub type AdminCall = (AdminRequest, oneshot::Sender<AdminReply>);

/// Admin settings (`[DEFAULT]` keys of the gateway's settings file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// Where to listen (`AdminHttpAddress`, default 127.0.0.1:8080; `off`: None).
    pub address: Option<SocketAddr>,
    /// The address was set explicitly (a bind failure is then fatal; the
    /// default only warns, so several gateways can run on one host).
    pub explicit: bool,
    /// `(name, token)` pairs from `AdminToken=name:token,...` (a bare token is named `operator`).
    pub tokens: Vec<(String, String)>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            address: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            explicit: false,
            tokens: Vec::new(),
        }
    }
}

impl AdminSettings {
    /// Reads `AdminHttpAddress` and `AdminToken` from the `[DEFAULT]` section.
    pub fn from_settings(
        settings: &crate::session::settings::Settings,
    ) -> Result<AdminSettings, String> {
        let mut a = AdminSettings::default();
        let d = &settings.default.entries;
        if let Some(e) = d.get("AdminHttpAddress") {
            a.explicit = true;
            a.address = match e.value.as_str() {
                "off" | "" => None,
                v => Some(v.parse().map_err(|_| {
                    format!(
                        "{}:{}: AdminHttpAddress={v:?} is invalid: expected IP:PORT (e.g. 127.0.0.1:8080) or off",
                        settings.path, e.line
                    )
                })?),
            };
        }
        if let Some(e) = d.get("AdminToken") {
            a.tokens = parse_tokens(&e.value);
        }
        // Tokens can stay out of the settings file.
        if let Ok(v) = std::env::var("FIXGW_ADMIN_TOKEN") {
            a.tokens.extend(parse_tokens(&v));
        }
        Ok(a)
    }
}

/// Parses `AdminToken=` values: `name:token` pairs or bare tokens, comma-separated.
pub fn parse_tokens(v: &str) -> Vec<(String, String)> {
    v.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once(':') {
            Some((name, token)) if !name.is_empty() && !token.is_empty() => {
                (name.to_string(), token.to_string())
            }
            _ => ("operator".to_string(), t.to_string()),
        })
        .collect()
}

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AdminState {
    core: mpsc::Sender<AdminCall>,
    ready: Arc<AtomicBool>,
    tokens: Arc<Vec<(String, String)>>,
}

impl AdminState {
    /// State over the core's admin queue; `ready` turns true once the gateway serves.
    pub fn new(
        core: mpsc::Sender<AdminCall>,
        ready: Arc<AtomicBool>,
        tokens: Vec<(String, String)>,
    ) -> AdminState {
        AdminState {
            core,
            ready,
            tokens: Arc::new(tokens),
        }
    }

    async fn ask(&self, req: AdminRequest) -> Response {
        let (tx, rx) = oneshot::channel();
        if self.core.send((req, tx)).await.is_err() {
            return error(503, "the gateway core is not running");
        }
        match tokio::time::timeout(CORE_TIMEOUT, rx).await {
            Ok(Ok(reply)) => reply.into_response(),
            Ok(Err(_)) => error(503, "the gateway core stopped before answering"),
            Err(_) => error(503, "the gateway core did not answer in time"),
        }
    }

    /// The name of the caller's token, if it presented a valid one.
    fn operator(&self, headers: &HeaderMap) -> Option<&str> {
        let given = headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .trim();
        self.tokens
            .iter()
            .find(|(_, t)| constant_time_eq(t.as_bytes(), given.as_bytes()))
            .map(|(n, _)| n.as_str())
    }

    async fn act(&self, headers: &HeaderMap, peer: SocketAddr, action: OperatorAction) -> Response {
        let Some(name) = self.operator(headers) else {
            tracing::warn!(%peer, action = %action.text(), "admin action refused: missing or wrong bearer token");
            return error(
                401,
                "a valid bearer token is required (Authorization: Bearer TOKEN, see AdminToken)",
            );
        };
        let who = format!("{name}@{peer}");
        tracing::info!(%who, action = %action.text(), "operator action");
        self.ask(AdminRequest::Action { who, action }).await
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: u16, text: &str) -> Response {
    AdminReply::Error(status, text.to_string()).into_response()
}

impl IntoResponse for AdminReply {
    fn into_response(self) -> Response {
        match self {
            AdminReply::Json(v) => Json(v).into_response(),
            AdminReply::Metrics(text) => {
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
            }
            AdminReply::Error(code, text) => (
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Json(serde_json::json!({ "error": text })),
            )
                .into_response(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct DepthQuery {
    depth: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct SeqBody {
    sender: Option<u64>,
    target: Option<u64>,
}

/// The routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route(
            "/ready",
            get(|State(s): State<AdminState>| async move {
                if s.ready.load(Ordering::Acquire) {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<AdminState>| async move { s.ask(AdminRequest::Metrics).await }),
        )
        .route(
            "/api/sessions",
            get(|State(s): State<AdminState>| async move { s.ask(AdminRequest::Sessions).await }),
        )
        .route(
            "/api/positions",
            get(|State(s): State<AdminState>| async move { s.ask(AdminRequest::Positions).await }),
        )
        .route(
            "/api/books/:symbol",
            get(
                |State(s): State<AdminState>,
                 Path(symbol): Path<String>,
                 Query(q): Query<DepthQuery>| async move {
                    s.ask(AdminRequest::Book {
                        symbol,
                        depth: q.depth.unwrap_or(10),
                    })
                    .await
                },
            ),
        )
        .route("/api/symbols/:symbol/:verb", post(symbol_action))
        .route("/api/accounts/:account/:verb", post(account_action))
        .route("/api/sessions/:session/:verb", post(session_action))
        .with_state(state)
}

async fn symbol_action(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((symbol, verb)): Path<(String, String)>,
) -> Response {
    let action = match verb.as_str() {
        "halt" => OperatorAction::Halt(symbol),
        "resume" => OperatorAction::Resume(symbol),
        _ => return error(404, "expected /api/symbols/{symbol}/halt or /resume"),
    };
    s.act(&headers, peer, action).await
}

async fn account_action(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((account, verb)): Path<(String, String)>,
) -> Response {
    let action = match verb.as_str() {
        "kill" => OperatorAction::Kill(account),
        "unblock" => OperatorAction::Unblock(account),
        _ => return error(404, "expected /api/accounts/{account}/kill or /unblock"),
    };
    s.act(&headers, peer, action).await
}

async fn session_action(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((session, verb)): Path<(String, String)>,
    body: Option<Json<SeqBody>>,
) -> Response {
    let action = match verb.as_str() {
        "logout" => OperatorAction::Logout(session),
        "seq" => {
            let Some(Json(b)) = body else {
                return error(400, "expected a JSON body {\"sender\": N, \"target\": N}");
            };
            if b.sender.is_none() && b.target.is_none()
                || b.sender == Some(0)
                || b.target == Some(0)
            {
                return error(400, "give sender and/or target, each at least 1");
            }
            OperatorAction::SetSeq {
                session,
                sender: b.sender,
                target: b.target,
            }
        }
        _ => return error(404, "expected /api/sessions/{session}/logout or /seq"),
    };
    s.act(&headers, peer, action).await
}

/// Serves the admin API on `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, state: AdminState) {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "admin HTTP server stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_with_and_without_names() {
        assert_eq!(
            parse_tokens("alice:s3cret, bob:xyz ,bare"),
            [
                ("alice".to_string(), "s3cret".to_string()),
                ("bob".to_string(), "xyz".to_string()),
                ("operator".to_string(), "bare".to_string())
            ]
        );
        assert!(parse_tokens(" , ").is_empty());
    }

    #[test]
    fn action_texts_are_what_the_journal_records() {
        assert_eq!(OperatorAction::Halt("AAPL".into()).text(), "halt AAPL");
        let seq = OperatorAction::SetSeq {
            session: "CLIENT1".into(),
            sender: Some(5),
            target: None,
        };
        assert_eq!(seq.text(), "seq CLIENT1 sender=5");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
