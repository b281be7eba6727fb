//! Posting a sweep to a remote registry (`relayguard sweep --registry URL --token TOKEN`).

use std::path::Path;
use std::time::Duration;

use std::borrow::Cow;

use anyhow::{Context, bail};
use relayguard_core::scan::HostResult;
use relayguard_core::{SweepMeta, SweepUpload};

/// How often a failed upload (no answer, or a 5xx) is tried again.
const ATTEMPTS: u32 = 4;

/// Posts the sweep to `registry`'s `/api/v1/sweeps` with an admin bearer token.
///
/// Connection failures and server errors are retried with backoff; a 4xx is final and its
/// message is shown. `ca` pins the registry's certificate authority (a campus CA) instead of the
/// system trust store.
pub async fn post_sweep(
    registry: &str,
    token: &str,
    ca: Option<&Path>,
    meta: &SweepMeta,
    results: &[HostResult],
) -> anyhow::Result<()> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("relayguard/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no usable PEM certificate", ca.display()))?;
        builder = builder.tls_certs_only(certs);
    }
    let client = builder.build().context("setting up the HTTPS client")?;
    let url = format!("{}/api/v1/sweeps", registry.trim_end_matches('/'));
    let body = serde_json::to_vec(&SweepUpload {
        meta: Cow::Borrowed(meta),
        results: Cow::Borrowed(results),
    })?;
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(&url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let why = match sent {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) if response.status().is_client_error() => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                bail!(
                    "the registry at {url} refused the sweep ({status}): {}",
                    text.trim()
                );
            }
            Ok(response) => format!("{}", response.status()),
            Err(e) => format!("{e}"),
        };
        if attempt == ATTEMPTS {
            bail!("could not post the sweep to {url} after {ATTEMPTS} attempts: {why}");
        }
        tracing::warn!(attempt, %why, "posting the sweep failed; retrying");
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    unreachable!("the loop returns or bails on its last attempt")
}
