//! Vantage points as the registry has them marked (external or internal), and the vantages that
//! saw each finding.

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, Tx, get_i64, get_str};
use crate::error::{Error, Result};
use crate::reconcile::{Exposure, Narrowed, Vantages};

/// One marked vantage point.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VantageRow {
    /// Its name, as sweeps and workers give it with `--vantage`.
    pub name: String,
    /// Where it looks from.
    pub exposure: Exposure,
    /// When it was last marked (Unix seconds).
    pub updated_at: i64,
}

/// Reads the marked vantages.
pub(crate) async fn load(tx: &mut Tx) -> Result<Vantages> {
    let mut map = HashMap::new();
    for r in sqlx::query("SELECT name, exposure FROM vantages")
        .fetch_all(&mut **tx)
        .await?
    {
        map.insert(get_str(&r, "name")?, get_str(&r, "exposure")?.parse()?);
    }
    Ok(Vantages(map))
}

/// The vantages stored with a finding (a JSON array; anything else reads as none).
pub(crate) fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Writes the vantages that still see a finding, its severity when they decide it, and its
/// evidence's account of them.
pub(crate) async fn narrow(tx: &mut Tx, n: &Narrowed, marked: &Vantages) -> Result<bool> {
    let Some(row) = sqlx::query(
        "SELECT id, evidence FROM findings WHERE address = $1 AND port = $2 AND kind = $3 AND status = 'open'",
    )
    .bind(n.key.address.clone())
    .bind(n.key.port)
    .bind(n.key.kind.id())
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(false);
    };
    let id = get_i64(&row, "id")?;
    let mut evidence: serde_json::Value =
        serde_json::from_str(&get_str(&row, "evidence")?).unwrap_or_default();
    marked.annotate(&mut evidence, n.key.kind, &n.vantages);
    sqlx::query("UPDATE findings SET vantages = $1, evidence = $2 WHERE id = $3")
        .bind(serde_json::to_string(&n.vantages).unwrap_or_else(|_| "[]".into()))
        .bind(evidence.to_string())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    if let Some(severity) = n.severity {
        sqlx::query("UPDATE findings SET severity = $1, severity_rank = $2 WHERE id = $3")
            .bind(severity.as_str())
            .bind(severity.rank())
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(true)
}

impl Store {
    /// Marks a vantage point external or internal; later sweeps from it are judged by that
    /// (findings already open keep what they have until a sweep sees them again).
    pub async fn set_vantage(&self, name: &str, exposure: Exposure) -> Result<VantageRow> {
        let name = name.trim();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(Error::Invalid(format!("invalid vantage name {name:?}")));
        }
        let now = crate::model::now_unix();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO vantages (name, exposure, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET exposure = excluded.exposure, updated_at = excluded.updated_at",
        )
        .bind(name.to_string())
        .bind(exposure.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(VantageRow {
            name: name.to_string(),
            exposure,
            updated_at: now,
        })
    }

    /// Every marked vantage point, by name.
    pub async fn list_vantages(&self) -> Result<Vec<VantageRow>> {
        sqlx::query("SELECT name, exposure, updated_at FROM vantages ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(VantageRow {
                    name: r.try_get::<String, _>("name")?,
                    exposure: get_str(r, "exposure")?.parse()?,
                    updated_at: get_i64(r, "updated_at")?,
                })
            })
            .collect()
    }
}
