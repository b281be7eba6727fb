//! Running the registry's HTTP(S) server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::api::{AppState, router};
use crate::error::{Error, Result};
use crate::store::Store;

/// Environment variable with admin tokens (comma- or newline-separated).
pub const ADMIN_TOKENS_ENV: &str = "RELAYGUARD_ADMIN_TOKENS";
/// Environment variable with tokens that may read `/metrics` only.
pub const METRICS_TOKENS_ENV: &str = "RELAYGUARD_METRICS_TOKENS";

/// The address of the client of a connection, over plain TCP or TLS (what the handlers read as
/// `ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        Peer(*s.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>>
    for Peer
{
    fn connect_info(s: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Peer {
        Peer(*s.remote_addr())
    }
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// PEM certificate chain for HTTPS (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    pub tls_key: Option<PathBuf>,
    /// Admin bearer tokens.
    pub admin_tokens: Vec<String>,
    /// Tokens that may read `/metrics` only.
    pub metrics_tokens: Vec<String>,
}

/// Reads admin tokens from a file (one per line, `#` comments) and/or [`ADMIN_TOKENS_ENV`].
/// Tokens shorter than 16 characters are refused: they would be guessable.
pub fn load_admin_tokens(file: Option<&std::path::Path>) -> Result<Vec<String>> {
    load_tokens("admin", file, ADMIN_TOKENS_ENV)
}

/// Reads metrics tokens from a file and/or [`METRICS_TOKENS_ENV`], as [`load_admin_tokens`].
pub fn load_metrics_tokens(file: Option<&std::path::Path>) -> Result<Vec<String>> {
    load_tokens("metrics", file, METRICS_TOKENS_ENV)
}

fn load_tokens(what: &str, file: Option<&std::path::Path>, env: &str) -> Result<Vec<String>> {
    let mut text = String::new();
    if let Some(f) = file {
        text = std::fs::read_to_string(f)
            .map_err(|e| Error::io(format!("reading {what} token file {}", f.display()), e))?;
    }
    if let Ok(v) = std::env::var(env) {
        text.push('\n');
        text.push_str(&v.replace(',', "\n"));
    }
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if let Some(short) = tokens.iter().find(|t| t.len() < 16) {
        return Err(Error::Invalid(format!(
            "{what} token {}… is shorter than 16 characters",
            short.chars().take(2).collect::<String>()
        )));
    }
    Ok(tokens)
}

/// Serves the API and pages until Ctrl-C / SIGTERM. Prints `listening on ADDR` to stdout once
/// bound (tests and scripts wait for that line; port 0 picks a free port).
pub async fn serve(store: Store, config: ServeConfig) -> Result<()> {
    serve_with_desk(store, config, None).await
}

/// Like [`serve`], with the registration desk when `desk` is given (sign-in links need SMTP).
pub async fn serve_with_desk(
    store: Store,
    config: ServeConfig,
    desk: Option<crate::desk::Desk>,
) -> Result<()> {
    if config.admin_tokens.is_empty() {
        tracing::warn!(
            "no admin tokens configured: only agent endpoints are usable (set {ADMIN_TOKENS_ENV})"
        );
    }
    let app = router(AppState {
        store,
        admin_tokens: Arc::new(config.admin_tokens),
        metrics_tokens: Arc::new(config.metrics_tokens),
    });
    let app = match desk {
        Some(d) => app.layer(axum::Extension(Arc::new(d))),
        None => app,
    };
    // The desk's per-client sign-in limit reads the peer address.
    let app = app.into_make_service_with_connect_info::<Peer>();
    let tcp = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::io(format!("binding {}", config.listen), e))?;
    let local = tcp
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    let serving = |e| Error::io("serving", e);
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = crate::tls::server_config(cert, key)?;
            println!("listening on https://{local}");
            let listener = crate::tls::TlsListener::new(tcp, tls).map_err(serving)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown())
                .await
                .map_err(serving)?;
        }
        (None, None) => {
            println!("listening on http://{local}");
            axum::serve(tcp, app)
                .with_graceful_shutdown(shutdown())
                .await
                .map_err(serving)?;
        }
        _ => {
            return Err(Error::Invalid(
                "--tls-cert and --tls-key go together".into(),
            ));
        }
    }
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
